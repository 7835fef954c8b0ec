//! Forwarding: a put that reached a node that is not a replica of its key goes to a replica, as
//! the I/O-free [`Forwarder`] chooses, within what is left of the request's deadline.

use kvctl::wire::deadline::Deadline;
use kvctl::wire::proto::{ErrorKind, Request, Response};
use kvctl::wire::transport::TransportError;

use super::Requests;
use crate::logic::coordinator::{Action, ForwardOutcome, ForwardReply, Forwarder};
use crate::service::error;

impl Requests {
    /// Hands `request` to a replica of the key, as `forwarder` chooses.
    pub(super) async fn forward(
        &self,
        mut forwarder: Forwarder,
        request: Request,
        deadline: Deadline,
    ) -> Response {
        let deadline = deadline.for_coordinator();
        loop {
            if let Some(why) = forwarder.poll_failure() {
                return error(ErrorKind::Unavailable, why);
            }
            let Some(Action::Send { to, addr }) = forwarder.poll_action() else {
                return error(
                    ErrorKind::Internal,
                    "the forwarder stopped without an outcome",
                );
            };
            let reply = match self
                .common
                .transport
                .request_with_timeout(addr, &request, deadline.remaining())
                .await
            {
                Ok(response) => ForwardReply::Answered(response),
                Err(e @ TransportError::Connect { .. }) => ForwardReply::Unreachable(e.to_string()),
                Err(e) => ForwardReply::Unconfirmed(e.to_string()),
            };
            match forwarder.on_reply(&to, reply) {
                Some(ForwardOutcome::Answered(response)) => return response,
                Some(ForwardOutcome::Failed(why)) => return error(ErrorKind::Unavailable, why),
                None => {}
            }
        }
    }
}
