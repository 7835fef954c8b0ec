//! Targets for the wire protocol ([`kvctl::wire::proto`]): requests with their envelope, responses,
//! the gossip members inside both, and the framed chunks of a bulk transfer.

use std::time::Duration;

use kvctl::wire::proto::{self, ProtoError, Request, Response, MESSAGE_BYTES_MAX};

use crate::allowance::measured;
use crate::cbor;

/// Decodes a request as a node does; one that decodes encodes back to itself.
pub fn proto_request(data: &[u8]) {
    let decoded = measured("proto::decode_request", data.len(), || {
        proto::decode_request(data)
    });
    match decoded {
        Ok((request, timeout)) => assert_request_roundtrip(&request, timeout),
        Err(ProtoError::TooLarge { len, .. }) => assert_eq!(len, data.len()),
        Err(_) => {}
    }
}

fn assert_request_roundtrip(request: &Request, timeout: Option<Duration>) {
    let encoded = proto::encode_request(request, timeout);
    let again = proto::decode_request(&encoded)
        .unwrap_or_else(|e| panic!("{request:?} encoded to bytes that do not decode: {e}"));
    assert_eq!(
        again,
        (request.clone(), timeout),
        "a request changed in a round trip"
    );
}

/// Decodes a response as a client or a coordinating node does; one that decodes encodes to
/// bytes that decode to the same encoding again (bytes, not values, are compared: a member's
/// `phi` may be NaN).
pub fn proto_response(data: &[u8]) {
    let decoded = measured("proto::decode::<Response>", data.len(), || {
        proto::decode::<Response>(data)
    });
    if let Ok(response) = decoded {
        assert_response_roundtrip(&response);
    }
}

fn assert_response_roundtrip(response: &Response) {
    let encoded = proto::encode(response);
    let again: Response = proto::decode(&encoded)
        .unwrap_or_else(|e| panic!("{response:?} encoded to bytes that do not decode: {e}"));
    assert_eq!(
        proto::encode(&again),
        encoded,
        "a response changed in a round trip"
    );
}

/// The fuzzer's bytes as the gossip members of a message: after the first byte, the CBOR of
/// the `members` of a [`Request::Gossip`] (first byte even) or of a [`Response::Members`]
/// (odd), inside a whole envelope, decoded as a node does.
pub fn proto_members(data: &[u8]) {
    let Some((&selector, members)) = data.split_first() else {
        return;
    };
    let mut message = if selector % 2 == 0 {
        cbor::message_head("Gossip", &[], "members")
    } else {
        let mut node = Vec::new();
        cbor::text(&mut node, "node-1");
        let mut replication = Vec::new();
        cbor::head(&mut replication, cbor::UNSIGNED, 3);
        cbor::message_head(
            "Members",
            &[("node", &node), ("replication", &replication)],
            "members",
        )
    };
    message.extend_from_slice(members);
    if selector % 2 == 0 {
        proto_request(&message);
    } else {
        proto_response(&message);
    }
}

/// What reading one frame of a bulk transfer gave.
enum Frame<'a> {
    /// A message to decode.
    Message(&'a [u8]),
    /// The transfer broke off, or a frame was over the limit: the reader stops with an error.
    Broken,
}

/// Reads the next frame of a bulk transfer from `stream` as `transport::Chunks` does (it reads
/// from a QUIC stream, so this follows its rules rather than calling it): a 4-byte big-endian
/// length and that many bytes of message, at most [`MESSAGE_BYTES_MAX`]; the first reply may
/// instead be one unframed message (its first byte, a CBOR map's, is 0x80 or above).
fn next_frame<'a>(stream: &mut &'a [u8], first: bool) -> Frame<'a> {
    let Some((len, rest)) = stream.split_first_chunk::<4>() else {
        return Frame::Broken;
    };
    if first && len[0] >= 0x80 {
        let whole = *stream;
        *stream = &[];
        return Frame::Message(whole);
    }
    let len = u32::from_be_bytes(*len) as usize;
    if len > MESSAGE_BYTES_MAX || rest.len() < len {
        return Frame::Broken;
    }
    let (message, rest) = rest.split_at(len);
    *stream = rest;
    Frame::Message(message)
}

/// The fuzzer's bytes as the stream of a bulk transfer: its frames read and decoded in turn,
/// as the reading side does, until the last chunk, an error or a broken frame.
pub fn proto_chunks(data: &[u8]) {
    let mut stream = data;
    let mut first = true;
    loop {
        let Frame::Message(message) = next_frame(&mut stream, std::mem::take(&mut first)) else {
            return;
        };
        let decoded = measured("a bulk transfer's frame", message.len(), || {
            proto::decode::<Response>(message)
        });
        match decoded {
            Ok(chunk @ Response::Chunk { last, .. }) => {
                assert_response_roundtrip(&chunk);
                if last {
                    return;
                }
            }
            Ok(other) => {
                assert_response_roundtrip(&other);
                return;
            }
            Err(_) => return,
        }
    }
}
