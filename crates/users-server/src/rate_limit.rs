//! The per-IP request budget, declared once per route in `configure()`:
//! `.wrap(per_ip("login"))`. It runs before anything else of the route.

use std::future::{ready, Ready};
use std::rc::Rc;

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{forward_ready, Service, ServiceRequest, ServiceResponse, Transform};
use futures_util::future::LocalBoxFuture;

use crate::auth::{app_state, refuse};
use crate::client_ip::request_ip;
use crate::error::ApiError;

/// Middleware counting each request against its client IP's budget for the route
/// (`RATE_LIMIT_PER_IP_PER_MINUTE`); 429 with `Retry-After` past it.
pub fn per_ip(route: &'static str) -> PerIp {
    PerIp(route)
}

#[derive(Debug, Clone, Copy)]
pub struct PerIp(&'static str);

impl<S, B> Transform<S, ServiceRequest> for PerIp
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Transform = PerIpService<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(PerIpService {
            route: self.0,
            service: Rc::new(service),
        }))
    }
}

pub struct PerIpService<S> {
    route: &'static str,
    service: Rc<S>,
}

impl<S, B> Service<ServiceRequest> for PerIpService<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<EitherBody<B>>;
    type Error = actix_web::Error;
    type Future = LocalBoxFuture<'static, Result<Self::Response, actix_web::Error>>;

    forward_ready!(service);

    fn call(&self, req: ServiceRequest) -> Self::Future {
        let (route, service) = (self.route, self.service.clone());
        Box::pin(async move {
            match limit(route, &req).await {
                Ok(()) => Ok(service.call(req).await?.map_into_left_body()),
                Err(e) => Ok(refuse(req, e)),
            }
        })
    }
}

async fn limit(route: &'static str, req: &ServiceRequest) -> Result<(), ApiError> {
    let state = app_state(req)?;
    if state.core.config.rate_limit_per_ip_per_minute > 0 {
        if let Some(ip) = request_ip(&state, req.peer_addr(), req.headers()) {
            users_core::throttle::hit(&state.core, route, &ip.to_string(), state.now()).await?;
        }
    }
    Ok(())
}
