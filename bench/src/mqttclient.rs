//! A minimal MQTT 3.1.1 client for load generation: CONNECT, SUBSCRIBE and QoS 0 PUBLISH out,
//! whole packets in. Written from the specification, independent of the plugin's own codec, so
//! that a bug there cannot hide itself; like `wsclient.rs`, it does far less than a real client
//! on purpose.

use std::io;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// PUBLISH's packet type (the fixed header's high nibble).
pub const PUBLISH: u8 = 3;

/// A connected client (CONNACK received).
pub struct MqttClient {
    reader: MqttReader,
    writer: MqttWriter,
}

/// The receiving half of a client.
pub struct MqttReader {
    stream: OwnedReadHalf,
    buffer: BytesMut,
}

/// The sending half of a client.
pub struct MqttWriter {
    stream: OwnedWriteHalf,
}

/// One packet received.
pub struct Packet<'a> {
    /// The fixed header's packet type (3 PUBLISH, 9 SUBACK…).
    pub kind: u8,
    /// The fixed header's flags.
    pub flags: u8,
    /// Everything after the fixed header.
    pub body: &'a [u8],
}

impl Packet<'_> {
    /// A PUBLISH's topic and payload.
    pub fn publish(&self) -> Option<(&[u8], &[u8])> {
        if self.kind != PUBLISH || self.body.len() < 2 {
            return None;
        }
        let topic_len = usize::from(u16::from_be_bytes([self.body[0], self.body[1]]));
        let topic = self.body.get(2..2 + topic_len)?;
        // QoS 1 and 2 carry a packet id after the topic.
        let skip = if self.flags & 0x06 != 0 { 2 } else { 0 };
        Some((topic, self.body.get(2 + topic_len + skip..)?))
    }
}

impl MqttClient {
    /// Connects to `address`, sends CONNECT (clean session, no keep-alive) and waits for a
    /// CONNACK that accepts it.
    pub async fn connect(address: &str, client_id: &str) -> io::Result<MqttClient> {
        let stream = TcpStream::connect(address).await?;
        stream.set_nodelay(true)?;
        let (read, write) = stream.into_split();
        let mut client = MqttClient {
            reader: MqttReader {
                stream: read,
                buffer: BytesMut::with_capacity(64 * 1024),
            },
            writer: MqttWriter { stream: write },
        };
        client.writer.stream.write_all(&connect(client_id)).await?;
        let mut connack = None;
        client
            .reader
            .read_packets(|packet| {
                connack = Some((packet.kind, packet.body.to_vec()));
                false
            })
            .await?;
        match connack {
            Some((2, body)) if body.len() == 2 && body[1] == 0 => Ok(client),
            other => Err(io::Error::other(format!(
                "CONNECT refused by {address}: {other:?}"
            ))),
        }
    }

    /// Subscribes to `filter` at QoS 0 and waits for a SUBACK granting it.
    pub async fn subscribe(&mut self, filter: &str) -> io::Result<()> {
        self.writer.stream.write_all(&subscribe(1, filter)).await?;
        let mut granted = None;
        self.reader
            .read_packets(|packet| {
                if packet.kind == 9 {
                    granted = packet.body.get(2).copied();
                    return false;
                }
                true
            })
            .await?;
        match granted {
            Some(0) => Ok(()),
            other => Err(io::Error::other(format!(
                "SUBSCRIBE {filter} refused: {other:?}"
            ))),
        }
    }

    /// Sends one QoS 0 PUBLISH.
    pub async fn publish(&mut self, topic: &str, payload: &[u8]) -> io::Result<()> {
        self.writer.publish(topic, payload).await
    }

    /// Waits for a PUBLISH on `topic`; returns its payload.
    pub async fn next_publish(&mut self, topic: &str) -> io::Result<Vec<u8>> {
        self.reader.next_publish(topic).await
    }

    /// Splits the client into its halves.
    pub fn split(self) -> (MqttReader, MqttWriter) {
        (self.reader, self.writer)
    }
}

impl MqttWriter {
    /// Sends one QoS 0 PUBLISH.
    pub async fn publish(&mut self, topic: &str, payload: &[u8]) -> io::Result<()> {
        let mut packet = Vec::with_capacity(payload.len() + topic.len() + 8);
        encode_publish(&mut packet, topic, payload);
        self.stream.write_all(&packet).await
    }

    /// Sends pre-encoded packets at once.
    pub async fn send_raw(&mut self, packets: &[u8]) -> io::Result<()> {
        self.stream.write_all(packets).await
    }
}

impl MqttReader {
    /// Reads packets as they arrive, calling `on_packet` for each, until it returns false
    /// (then Ok(true)) or the connection closes (Ok(false)).
    pub async fn read_packets(
        &mut self,
        mut on_packet: impl FnMut(Packet<'_>) -> bool,
    ) -> io::Result<bool> {
        self.read_batches(|packet| packet.is_none_or(&mut on_packet))
            .await
    }

    /// As `read_packets`, and calls `on_event(None)` each time every complete packet received
    /// so far has been seen, before waiting for more: a counter can be published once per read
    /// rather than once per packet.
    pub async fn read_batches(
        &mut self,
        mut on_event: impl FnMut(Option<Packet<'_>>) -> bool,
    ) -> io::Result<bool> {
        loop {
            while let Some((first, start, end)) = parse(&self.buffer)? {
                let keep_going = on_event(Some(Packet {
                    kind: first >> 4,
                    flags: first & 0x0f,
                    body: &self.buffer[start..end],
                }));
                self.buffer.advance(end);
                if !keep_going {
                    return Ok(true);
                }
            }
            if !on_event(None) {
                return Ok(true);
            }
            if self.buffer.capacity() - self.buffer.len() < 16 * 1024 {
                self.buffer.reserve(64 * 1024);
            }
            if self.stream.read_buf(&mut self.buffer).await? == 0 {
                return Ok(false);
            }
        }
    }

    /// Waits for a PUBLISH on `topic`; returns its payload.
    pub async fn next_publish(&mut self, topic: &str) -> io::Result<Vec<u8>> {
        let mut found = None;
        self.read_packets(|packet| match packet.publish() {
            Some((on, payload)) if on == topic.as_bytes() => {
                found = Some(payload.to_vec());
                false
            }
            _ => true,
        })
        .await?;
        found.ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "closed"))
    }
}

/// CONNECT, MQTT 3.1.1, clean session, keep-alive 0 (none).
pub fn connect(client_id: &str) -> Vec<u8> {
    let mut body = Vec::with_capacity(12 + client_id.len());
    push_string(&mut body, b"MQTT");
    body.extend_from_slice(&[4, 0x02, 0, 0]);
    push_string(&mut body, client_id.as_bytes());
    with_header(0x10, &body)
}

/// SUBSCRIBE to one filter at QoS 0.
pub fn subscribe(packet_id: u16, filter: &str) -> Vec<u8> {
    let mut body = packet_id.to_be_bytes().to_vec();
    push_string(&mut body, filter.as_bytes());
    body.push(0);
    with_header(0x82, &body)
}

/// Appends a QoS 0 PUBLISH.
pub fn encode_publish(out: &mut Vec<u8>, topic: &str, payload: &[u8]) {
    push_header(out, 0x30, 2 + topic.len() + payload.len());
    push_string(out, topic.as_bytes());
    out.extend_from_slice(payload);
}

fn with_header(first: u8, body: &[u8]) -> Vec<u8> {
    let mut packet = Vec::with_capacity(body.len() + 5);
    push_header(&mut packet, first, body.len());
    packet.extend_from_slice(body);
    packet
}

fn push_header(out: &mut Vec<u8>, first: u8, mut remaining: usize) {
    out.push(first);
    loop {
        let byte = (remaining % 128) as u8;
        remaining /= 128;
        if remaining == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn push_string(out: &mut Vec<u8>, text: &[u8]) {
    out.extend_from_slice(&(text.len() as u16).to_be_bytes());
    out.extend_from_slice(text);
}

/// `(first byte, body start, packet end)` of the first complete packet in `buffer`.
fn parse(buffer: &[u8]) -> io::Result<Option<(u8, usize, usize)>> {
    let mut remaining = 0usize;
    for index in 1..5 {
        let Some(&byte) = buffer.get(index) else {
            return Ok(None);
        };
        remaining |= usize::from(byte & 0x7f) << (7 * (index - 1));
        if byte & 0x80 == 0 {
            let end = index + 1 + remaining;
            return Ok((buffer.len() >= end).then_some((buffer[0], index + 1, end)));
        }
    }
    Err(io::Error::other("malformed remaining length"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_round_trips_through_the_parser() {
        let mut packet = Vec::new();
        encode_publish(&mut packet, "a/b", &[b'x'; 200]);
        assert_eq!(&packet[..3], &[0x30, 205, 1]);
        let (first, start, end) = parse(&packet).unwrap().unwrap();
        assert_eq!((first, end), (0x30, packet.len()));
        let parsed = Packet {
            kind: first >> 4,
            flags: first & 0x0f,
            body: &packet[start..end],
        };
        let (topic, payload) = parsed.publish().unwrap();
        assert_eq!((topic, payload.len()), (&b"a/b"[..], 200));
        assert!(parse(&packet[..packet.len() - 1]).unwrap().is_none());
    }

    #[test]
    fn connect_and_subscribe_are_well_formed() {
        assert_eq!(
            connect("c"),
            [0x10, 13, 0, 4, b'M', b'Q', b'T', b'T', 4, 2, 0, 0, 0, 1, b'c']
        );
        assert_eq!(subscribe(1, "t"), [0x82, 6, 0, 1, 0, 1, b't', 0]);
    }
}
