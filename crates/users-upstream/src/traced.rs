//! The trace context on the calls to providers (a leaf: every module that calls uses it).

/// `request` with the trace context of the current span: every call to a provider
/// carries the `traceparent` of the request it serves while traces are exported
/// (docs/operations.md#traces), and nothing otherwise.
pub(crate) fn traced(mut request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
    for (name, value) in users_domain::trace_context::headers() {
        request = request.header(name, value);
    }
    request
}
