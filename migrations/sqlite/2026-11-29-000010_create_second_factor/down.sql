DROP TABLE mfa_challenges;
DROP TABLE webauthn_challenges;
DROP TABLE passkeys;
DROP TABLE recovery_codes;
DROP TABLE totp_factors;
