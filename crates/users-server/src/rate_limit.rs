//! The per-IP request budget, declared once per route in `configure()`:
//! `.wrap(per_ip("login"))`. It runs before anything else of the route.

use std::future::{ready, Ready};
use std::net::{IpAddr, Ipv6Addr};
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
            users_core::throttle::hit(&state.core, route, &budget_of(ip), state.now()).await?;
        }
    }
    Ok(())
}

/// Whose budget a request from `ip` spends: an IPv4 address's own, and for IPv6 the
/// /64 network's (`2001:db8:1:2::/64`), since one subscriber is usually given a whole
/// /64 and could otherwise take a fresh address, and a fresh budget, per request. An
/// IPv4-mapped address (`::ffff:1.2.3.4`, from a dual-stack socket) is its IPv4 one.
fn budget_of(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let network = Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64));
                format!("{network}/64")
            }
        },
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn budget(ip: &str) -> String {
        budget_of(ip.parse().unwrap())
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        assert_eq!(budget("2001:db8:1:2::5"), "2001:db8:1:2::/64");
        assert_eq!(
            budget("2001:db8:1:2:aaaa:bbbb:cccc:dddd"),
            "2001:db8:1:2::/64"
        );
        assert_eq!(budget("2001:db8:1:3::5"), "2001:db8:1:3::/64");
        assert_eq!(budget("::1"), "::/64");
    }

    #[test]
    fn ipv4_counts_as_itself_mapped_or_not() {
        assert_eq!(budget("198.51.100.7"), "198.51.100.7");
        assert_eq!(budget("::ffff:198.51.100.7"), "198.51.100.7");
        assert_ne!(budget("198.51.100.8"), budget("198.51.100.7"));
    }
}
