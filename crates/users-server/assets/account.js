'use strict';
// The account page: sign in (password, passkey, provider, second step), passkeys,
// TOTP with recovery codes, API keys, sessions, sign out. It talks to the JSON API of the same
// origin with the session cookie (fastapiusersauth) only. It never takes a token from
// its URL: a provider sign-in ends with the callback setting the cookie, and a second
// step it needs keeps its mfa_token in an HttpOnly cookie (docs/security.md).
(function () {
  const $ = (id) => document.getElementById(id);
  // the mfa_token of a password or passkey sign-in's second step (from the JSON answer);
  // null for a provider sign-in's, whose token is in the users_mfa cookie
  let mfaToken = null;
  // on /login (the provider's sign-in page): where to go once signed in, a path of
  // this service (the server only renders local paths here)
  const RETURN_TO = document.body.dataset.returnTo || null;
  const LOGIN_HINT = document.body.dataset.loginHint || '';

  function say(text, kind) {
    const box = $('status');
    box.textContent = text || '';
    box.className = text ? 'message ' + (kind || 'ok') : 'message';
    box.hidden = !text;
  }

  function detailText(data) {
    if (!data || data.detail === undefined) return 'Something went wrong.';
    const d = data.detail;
    if (typeof d === 'string') return MESSAGES[d] || d;
    if (Array.isArray(d)) return d.map((e) => (e.loc || []).slice(1).join('.') + ': ' + e.msg).join('; ');
    if (d.reason) return d.reason;
    return MESSAGES[d.code] || d.code || 'Something went wrong.';
  }

  const MESSAGES = {
    LOGIN_BAD_CREDENTIALS: 'Wrong email or password.',
    MFA_BAD_CODE: 'That code is not right (or was used already).',
    MFA_BAD_PASSWORD: 'Wrong password.',
    MFA_TOKEN_INVALID: 'This sign-in took too long or failed too often: start again.',
    MFA_NOT_PENDING: 'Start the set-up again.',
    REAUTHENTICATION_REQUIRED: 'Enter your password first (or sign out and in again: a sign-in of the last 10 minutes is enough).',
    OAUTH_USER_ALREADY_EXISTS: 'An account with this email exists already: sign in to it first, then link the provider.',
    OAUTH_ACCOUNT_ALREADY_LINKED: 'That provider account is linked to another account.',
    OAUTH_NOT_AVAILABLE_EMAIL: 'The provider did not give a verified email address.',
    PASSKEY_INVALID: 'The passkey could not be used.',
    PASSKEYS_NOT_CONFIGURED: 'Passkeys are not set up on this service.',
    CSRF_ORIGIN_MISMATCH: 'Request refused (wrong origin).',
    API_KEY_PERMISSION_NOT_HELD: 'You do not hold one of those permissions.',
    API_KEY_NOT_ALLOWED: 'An API key cannot do that.',
  };

  async function api(method, path, body, form) {
    const headers = {};
    let payload;
    if (form) {
      payload = new URLSearchParams(form);
    } else if (body !== undefined) {
      headers['content-type'] = 'application/json';
      payload = JSON.stringify(body);
    }
    const r = await fetch(path, { method, headers, body: payload, credentials: 'same-origin' });
    let data = null;
    const text = await r.text();
    if (text) {
      try { data = JSON.parse(text); } catch (e) { data = null; }
    }
    return { status: r.status, data };
  }

  // ---- WebAuthn: JSON (base64url) to and from what navigator.credentials takes ----
  function fromB64url(s) {
    const b64 = s.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((s.length + 3) % 4);
    const bin = atob(b64);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out.buffer;
  }
  function toB64url(buf) {
    const bytes = new Uint8Array(buf);
    let bin = '';
    for (let i = 0; i < bytes.length; i++) bin += String.fromCharCode(bytes[i]);
    return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  }
  function creationOptions(pk) {
    const o = Object.assign({}, pk);
    o.challenge = fromB64url(pk.challenge);
    o.user = Object.assign({}, pk.user, { id: fromB64url(pk.user.id) });
    if (pk.excludeCredentials) {
      o.excludeCredentials = pk.excludeCredentials.map((c) => Object.assign({}, c, { id: fromB64url(c.id) }));
    }
    return o;
  }
  function requestOptions(pk) {
    const o = Object.assign({}, pk);
    o.challenge = fromB64url(pk.challenge);
    o.allowCredentials = (pk.allowCredentials || []).map((c) => Object.assign({}, c, { id: fromB64url(c.id) }));
    return o;
  }
  function credentialJson(cred) {
    const r = cred.response;
    const response = { clientDataJSON: toB64url(r.clientDataJSON) };
    if (r.attestationObject) {
      response.attestationObject = toB64url(r.attestationObject);
      if (r.getTransports) response.transports = r.getTransports();
    } else {
      response.authenticatorData = toB64url(r.authenticatorData);
      response.signature = toB64url(r.signature);
      response.userHandle = r.userHandle ? toB64url(r.userHandle) : null;
    }
    return {
      id: cred.id,
      rawId: toB64url(cred.rawId),
      type: cred.type,
      response,
      extensions: cred.getClientExtensionResults ? cred.getClientExtensionResults() : {},
    };
  }
  async function passkeyAssertion(options) {
    const cred = await navigator.credentials.get({ publicKey: requestOptions(options.publicKey) });
    return credentialJson(cred);
  }

  // ---- views ----
  function show(view) {
    for (const id of ['signin', 'signup', 'forgot', 'second-step', 'account']) $(id).hidden = id !== view;
    const heading = $(view).querySelector('h2');
    if (heading) heading.focus();
  }

  async function signedIn() {
    say('');
    mfaToken = null;
    if (RETURN_TO) {
      window.location.assign(RETURN_TO);
      return;
    }
    await loadAccount();
  }

  async function loadAccount() {
    const me = await api('GET', '/users/me');
    if (me.status !== 200) {
      show('signin');
      return;
    }
    $('who').textContent = me.data.email;
    show('account');
    await Promise.all([loadPasskeys(), loadTotp(), loadKeys(), loadSessions(), loadApps()]);
  }

  function item(text, buttonLabel, onClick, badge) {
    const li = document.createElement('li');
    const span = document.createElement('span');
    span.className = 'item-text';
    span.textContent = text;
    if (badge) {
      const b = document.createElement('span');
      b.className = 'badge';
      b.textContent = badge;
      span.appendChild(b);
    }
    li.appendChild(span);
    if (buttonLabel) {
      const button = document.createElement('button');
      button.type = 'button';
      button.className = 'danger';
      button.textContent = buttonLabel;
      button.addEventListener('click', onClick);
      li.appendChild(button);
    }
    return li;
  }

  function when(iso) {
    return iso ? new Date(iso).toLocaleString() : 'never';
  }

  async function loadPasskeys() {
    const list = $('passkey-list');
    list.textContent = '';
    const r = await api('GET', '/auth/passkeys');
    if (r.status === 503) {
      $('passkeys').hidden = true;
      return;
    }
    for (const p of r.data || []) {
      list.appendChild(item(p.name + ' (added ' + when(p.created_at) + ', last used ' + when(p.last_used_at) + ')',
        'Remove', async () => {
          const d = await api('DELETE', '/auth/passkeys/' + encodeURIComponent(p.id), reauth());
          $('passkey-password').value = '';
          if (d.status === 204) { say('Passkey removed.'); await loadAccount(); } else say(detailText(d.data), 'error');
        }));
    }
    $('passkey-none').hidden = (r.data || []).length > 0;
  }

  async function loadTotp() {
    const r = await api('GET', '/auth/mfa');
    if (r.status !== 200) return;
    const on = r.data.totp;
    $('totp-state').textContent = on
      ? 'On. ' + r.data.recovery_codes_left + ' recovery codes left.'
      : 'Off.';
    $('totp-start').hidden = on;
    $('totp-on').hidden = !on;
    $('totp-setup').hidden = true;
  }

  // "Chrome on Linux" from a user-agent string: the browser, then the system
  function device(s) {
    if (s.method && s.method.startsWith('oauth:')) return 'App ' + s.method.slice(6);
    const ua = s.user_agent || '';
    if (!ua) return 'Unknown device';
    const browsers = [[/Edg\//, 'Edge'], [/OPR\/|Opera/, 'Opera'], [/Firefox\//, 'Firefox'],
      [/Chrom(e|ium)\//, 'Chrome'], [/Safari\//, 'Safari'], [/curl\//, 'curl'],
      [/python-requests|httpx|aiohttp/, 'a Python script']];
    const systems = [[/Windows/, 'Windows'], [/Android/, 'Android'], [/iPhone|iPad|iOS/, 'iOS'],
      [/Mac OS X|Macintosh/, 'macOS'], [/CrOS/, 'ChromeOS'], [/Linux/, 'Linux']];
    const b = browsers.find(([re]) => re.test(ua));
    const o = systems.find(([re]) => re.test(ua));
    if (!b && !o) return ua.length > 60 ? ua.slice(0, 57) + '…' : ua;
    return (b ? b[1] : 'A browser') + (o ? ' on ' + o[1] : '');
  }
  function how(method) {
    if (method === 'password') return 'password';
    if (method === 'passkey') return 'passkey';
    if (method && method.startsWith('oauth:')) return 'connected app';
    return 'with ' + method;
  }

  async function loadApps() {
    const list = $('app-list');
    list.textContent = '';
    const r = await api('GET', '/users/me/grants');
    const apps = r.status === 200 ? r.data : [];
    for (const g of apps) {
      list.appendChild(item(g.client_name + ' (' + g.scopes.join(', ') + '; allowed ' + when(g.granted_at) +
        ', last used ' + when(g.last_used_at) + ')', 'Remove', async () => {
        const d = await api('DELETE', '/users/me/grants/' + encodeURIComponent(g.client_id));
        if (d.status === 204) { say(g.client_name + ' is disconnected.'); await loadApps(); } else say(detailText(d.data), 'error');
      }));
    }
    $('apps-none').hidden = apps.length > 0;
  }

  async function loadKeys() {
    const list = $('key-list');
    list.textContent = '';
    const r = await api('GET', '/users/me/api-keys');
    for (const k of r.data || []) {
      list.appendChild(item(k.name + ' (' + k.prefix + '…, created ' + when(k.created_at) + ', last used ' + when(k.last_used_at) + ')',
        'Revoke', async () => {
          const d = await api('DELETE', '/users/me/api-keys/' + encodeURIComponent(k.id));
          if (d.status === 204) { say('API key revoked.'); await loadKeys(); } else say(detailText(d.data), 'error');
        }));
    }
    $('key-none').hidden = (r.data || []).length > 0;
  }

  async function loadSessions() {
    const list = $('session-list');
    list.textContent = '';
    const r = await api('GET', '/auth/sessions');
    for (const s of r.data || []) {
      const text = device(s) + ', ' + (s.ip || 'unknown address') +
        ', signed in ' + when(s.created_at) + ' (' + how(s.method) + '), last used ' + when(s.last_used_at);
      list.appendChild(item(text, s.current ? null : 'Sign out this device', async () => {
        const d = await api('DELETE', '/auth/sessions/' + encodeURIComponent(s.id));
        if (d.status === 204) { say('That device is signed out.'); await loadSessions(); } else say(detailText(d.data), 'error');
      }, s.current ? 'this device' : null));
    }
  }

  // a sensitive change proves it is still you: the password when typed, else the
  // service accepts a sign-in of the last ten minutes
  function reauth() {
    const password = $('passkey-password').value;
    return password ? { password } : {};
  }

  function secondStep(detail) {
    mfaToken = detail.mfa_token || null;
    const methods = detail.methods || [];
    $('mfa-totp').hidden = !methods.includes('totp');
    $('mfa-recovery').hidden = !methods.includes('recovery_code');
    $('mfa-passkey').hidden = !methods.includes('passkey');
    $('mfa-code').value = '';
    $('mfa-recovery-code').value = '';
    show('second-step');
  }

  async function afterFirstFactor(r) {
    if (r.status === 204) return signedIn();
    if (r.status === 400 && r.data && r.data.detail && r.data.detail.code === 'LOGIN_MFA_REQUIRED') {
      say('');
      return secondStep(r.data.detail);
    }
    say(detailText(r.data), 'error');
  }

  // ---- sign in ----
  $('signin-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const r = await api('POST', '/auth/cookie/login', undefined,
      { username: $('email').value, password: $('password').value });
    $('password').value = '';
    await afterFirstFactor(r);
  });

  $('signin-passkey').addEventListener('click', async () => {
    try {
      const o = await api('POST', '/auth/passkeys/login/options', {});
      if (o.status !== 200) return say(detailText(o.data), 'error');
      const credential = await passkeyAssertion(o.data);
      const r = await api('POST', '/auth/passkeys/login',
        { challenge_id: o.data.challenge_id, credential, transport: 'cookie' });
      await afterFirstFactor(r);
    } catch (err) {
      say('The passkey sign-in was cancelled or failed.', 'error');
    }
  });

  for (const button of document.querySelectorAll('button[data-provider]')) {
    button.addEventListener('click', async () => {
      // back to this page: from /login, with the request to return to once signed in
      const page = RETURN_TO ? '/login?via=provider&return_to=' + encodeURIComponent(RETURN_TO) : '/account';
      const r = await api('GET', '/auth/' + encodeURIComponent(button.dataset.provider) +
        '/authorize?return_to=' + encodeURIComponent(page));
      if (r.status === 200) window.location.assign(r.data.authorization_url);
      else say(detailText(r.data), 'error');
    });
  }

  // ---- sign up, forgot password ----
  $('to-signup').addEventListener('click', (e) => { e.preventDefault(); say(''); $('signup-email').value = $('email').value; show('signup'); });
  $('to-forgot').addEventListener('click', (e) => { e.preventDefault(); say(''); $('forgot-email').value = $('email').value; show('forgot'); });
  for (const b of document.querySelectorAll('.back-to-signin')) {
    b.addEventListener('click', () => { say(''); show('signin'); });
  }
  $('signup-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const email = $('signup-email').value;
    const password = $('signup-password').value;
    const r = await api('POST', '/auth/register', { email, password });
    if (r.status !== 201) return say(detailText(r.data), 'error');
    const l = await api('POST', '/auth/cookie/login', undefined, { username: email, password });
    $('signup-password').value = '';
    await afterFirstFactor(l);
  });
  $('forgot-form').addEventListener('submit', async (e) => {
    e.preventDefault();
    const r = await api('POST', '/auth/forgot-password', { email: $('forgot-email').value });
    if (r.status !== 202) return say(detailText(r.data), 'error');
    say('If an account has this address, a mail with a link is on its way.');
    show('signin');
  });

  // ---- second step ----
  async function verify(proof) {
    const token = mfaToken ? { mfa_token: mfaToken } : {};
    const r = await api('POST', '/auth/mfa/verify', Object.assign(token, proof));
    if (r.status === 400 && r.data && r.data.detail === 'MFA_TOKEN_INVALID') {
      show('signin');
    }
    await afterFirstFactor(r);
  }
  $('mfa-totp').addEventListener('submit', (e) => { e.preventDefault(); verify({ code: $('mfa-code').value.trim() }); });
  $('mfa-recovery').addEventListener('submit', (e) => {
    e.preventDefault();
    verify({ recovery_code: $('mfa-recovery-code').value.trim() });
  });
  $('mfa-passkey').addEventListener('click', async () => {
    try {
      const o = await api('POST', '/auth/passkeys/login/options',
        mfaToken ? { mfa_token: mfaToken } : { second_step: true });
      if (o.status !== 200) return say(detailText(o.data), 'error');
      const credential = await passkeyAssertion(o.data);
      await verify({ challenge_id: o.data.challenge_id, credential });
    } catch (err) {
      say('The passkey was cancelled or failed.', 'error');
    }
  });
  $('mfa-cancel').addEventListener('click', () => { mfaToken = null; say(''); show('signin'); });

  // ---- passkeys ----
  $('passkey-add').addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      const proof = reauth();
      const o = await api('POST', '/auth/passkeys/register/options', proof);
      if (o.status !== 200) return say(detailText(o.data), 'error');
      const cred = await navigator.credentials.create({ publicKey: creationOptions(o.data.publicKey) });
      const r = await api('POST', '/auth/passkeys/register', Object.assign(
        { challenge_id: o.data.challenge_id, name: $('passkey-name').value, credential: credentialJson(cred) }, proof));
      $('passkey-password').value = '';
      if (r.status === 201) {
        $('passkey-name').value = '';
        say('Passkey added.');
        await loadAccount();
      } else say(detailText(r.data), 'error');
    } catch (err) {
      say('Adding the passkey was cancelled or failed.', 'error');
    }
  });

  // ---- TOTP ----
  $('totp-start').addEventListener('submit', async (e) => {
    e.preventDefault();
    const password = $('totp-password').value;
    const r = await api('POST', '/auth/mfa/totp', password ? { password } : {});
    $('totp-password').value = '';
    if (r.status !== 200) return say(detailText(r.data), 'error');
    $('totp-qr').innerHTML = r.data.qr_svg; // an SVG made by this service
    $('totp-secret').textContent = r.data.secret;
    $('totp-start').hidden = true;
    $('totp-setup').hidden = false;
    $('totp-codes').hidden = true;
    $('totp-confirm').hidden = false;
    $('totp-confirm-code').focus();
  });
  $('totp-confirm').addEventListener('submit', async (e) => {
    e.preventDefault();
    const r = await api('POST', '/auth/mfa/totp/confirm', { code: $('totp-confirm-code').value.trim() });
    $('totp-confirm-code').value = '';
    if (r.status !== 200) return say(detailText(r.data), 'error');
    showCodes(r.data.recovery_codes);
    $('totp-confirm').hidden = true;
    say('Two-step verification is on. Your other devices were signed out.');
  });
  function showCodes(codes) {
    const list = $('totp-code-list');
    list.textContent = '';
    for (const c of codes) {
      const li = document.createElement('li');
      li.textContent = c;
      list.appendChild(li);
    }
    $('totp-setup').hidden = false;
    $('totp-qr').textContent = '';
    $('totp-secret').textContent = '';
    $('totp-codes').hidden = false;
    $('totp-codes-heading').focus();
  }
  $('totp-done').addEventListener('click', async () => {
    $('totp-code-list').textContent = '';
    $('totp-codes').hidden = true;
    await loadAccount();
  });
  $('totp-manage').addEventListener('submit', async (e) => {
    e.preventDefault();
    const code = $('totp-manage-code').value.trim();
    $('totp-manage-code').value = '';
    if (e.submitter && e.submitter.id === 'totp-new-codes') {
      const r = await api('POST', '/auth/mfa/recovery-codes', { code });
      if (r.status !== 200) return say(detailText(r.data), 'error');
      say('New recovery codes; the old ones no longer work.');
      showCodes(r.data.recovery_codes);
    } else {
      const r = await api('DELETE', '/auth/mfa/totp', { code });
      if (r.status !== 204) return say(detailText(r.data), 'error');
      say('Two-step verification is off.');
      await loadAccount();
    }
  });

  // ---- API keys: made with re-authentication, shown once ----
  $('key-add').addEventListener('submit', async (e) => {
    e.preventDefault();
    const password = $('key-password').value;
    const body = { name: $('key-name').value.trim() };
    if (password) body.password = password;
    const r = await api('POST', '/users/me/api-keys', body);
    $('key-password').value = '';
    if (r.status !== 201) return say(detailText(r.data), 'error');
    $('key-name').value = '';
    $('key-value').textContent = r.data.key;
    $('key-new').hidden = false;
    $('key-add').hidden = true;
    say('API key created. Copy it now: it is shown only this once.');
    $('key-new-heading').focus();
    await loadKeys();
  });
  $('key-copy').addEventListener('click', async () => {
    const key = $('key-value').textContent;
    try {
      await navigator.clipboard.writeText(key);
    } catch (err) {
      // without the clipboard API (an insecure origin): select it and copy
      const range = document.createRange();
      range.selectNodeContents($('key-value'));
      const selection = window.getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      if (!document.execCommand('copy')) return say('Select the key and copy it yourself.', 'error');
    }
    say('Copied.');
  });
  $('key-done').addEventListener('click', () => {
    $('key-value').textContent = '';
    $('key-new').hidden = true;
    $('key-add').hidden = false;
    say('');
  });

  // ---- sessions, sign out ----
  $('sessions-others').addEventListener('click', async () => {
    const r = await api('DELETE', '/auth/sessions');
    if (r.status === 204) { say('Every other device is signed out.'); await loadSessions(); } else say(detailText(r.data), 'error');
  });
  $('signout').addEventListener('click', async () => {
    $('key-value').textContent = '';
    $('key-new').hidden = true;
    $('key-add').hidden = false;
    await api('POST', '/auth/cookie/logout');
    say('Signed out.');
    show('signin');
  });

  // ---- back from a provider: the cookie is set already; or ?mfa=<methods> (the
  // mfa_token waits in an HttpOnly cookie), or ?error=CODE ----
  const back = new URLSearchParams(window.location.search);
  if (window.location.search || window.location.hash) history.replaceState(null, '', window.location.pathname);
  if (back.get('error')) say(detailText({ detail: back.get('error') }), 'error');
  if (LOGIN_HINT) $('email').value = LOGIN_HINT;
  if (back.get('mfa')) {
    secondStep({ mfa_token: null, methods: back.get('mfa').split(',') });
  } else if (RETURN_TO && back.get('via') === 'provider' && !back.get('error')) {
    signedIn();
  } else if (RETURN_TO) {
    show('signin');
  } else {
    loadAccount();
  }
})();
