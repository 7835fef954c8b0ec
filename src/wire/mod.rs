//! The wire: how nodes and clients talk (built on [`crate::model`]).
//!
//! - [`proto`]: the messages, their envelope and version; [`bounded_list`]: lists bounded as
//!   they are decoded; [`deadline`]: the time budget a request carries.
//! - [`transport`]: requests over QUIC (streams, frames, bulk transfers, the connection pool);
//!   [`budget`]: bytes in flight per node and per connection.
//! - [`tls`]: mutual TLS configurations and who a peer is; [`certs`]: making and reading the
//!   certificates; [`role`]: what a client certificate may ask (least privilege).

pub mod bounded_list;
pub mod budget;
pub mod certs;
pub mod deadline;
pub mod proto;
pub mod role;
pub mod tls;
pub mod transport;
