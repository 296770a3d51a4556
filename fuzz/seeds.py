#!/usr/bin/env python3
"""Writes the committed seed corpora (fuzz/corpus/<target>/seed-*), from inputs the tests use.

Run from anywhere: python3 fuzz/seeds.py. Deterministic; re-running rewrites the same files.
"""
import json
import os
import re
import shutil
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CORPUS = os.path.join(HERE, "corpus")


def write(target, seeds):
    folder = os.path.join(CORPUS, target)
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    for index, seed in enumerate(seeds):
        if isinstance(seed, str):
            seed = seed.encode()
        with open(os.path.join(folder, "seed-%03d" % index), "wb") as out:
            out.write(seed)


def deflate(data):
    """permessage-deflate: raw deflate, sync flush, the 00 00 ff ff tail removed."""
    compressor = zlib.compressobj(6, zlib.DEFLATED, -15)
    out = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(b"\x00\x00\xff\xff")
    return out[:-4]


def masked(first, payload, mask=b"\x01\x02\x03\x04"):
    """A client frame (as plugin-kit/src/ws/testing.rs masked_frame)."""
    length = len(payload)
    if length < 126:
        header = bytes([first, 0x80 | length])
    elif length < 65536:
        header = bytes([first, 0x80 | 126]) + struct.pack(">H", length)
    else:
        header = bytes([first, 0x80 | 127]) + struct.pack(">Q", length)
    body = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    return header + mask + body


REQUEST = b'{"controller":"server","action":"now","requestId":"r1"}'
SUBSCRIBE = (b'{"controller":"realtime","action":"subscribe","index":"i","collection":"c",'
             b'"body":{"equals":{"a":1}},"requestId":"s1"}')

# ws_frame: flag byte (bit 0 deflate, bits 1..7 chunk size - 1), then frames.
ws_frames = [
    masked(0x81, REQUEST),
    masked(0x81, b'{"p":1}'),
    masked(0x82, b"\x00\x01\x02"),
    masked(0x01, b'{"contr') + masked(0x80, b'oller":"server"}'),
    masked(0x01, b"ab") + masked(0x89, b"ping") + masked(0x80, b"cd"),
    masked(0x89, b"hello"),
    masked(0x8A, b""),
    masked(0x88, b"\x03\xe8bye"),
    masked(0x88, b""),
    masked(0x81, "é ü ✓".encode()),
    masked(0x81, b"\xff\xfe"),
    masked(0x81, b"x" * 200),
    masked(0x82, b"y" * 20000),
]
ws_deflated = [
    masked(0xC1, deflate(REQUEST)),
    masked(0xC1, deflate(b"a" * 60000)),
    masked(0x41, deflate(SUBSCRIBE)[:10]) + masked(0x80, deflate(SUBSCRIBE)[10:]),
    masked(0xC1, b"\xff\xff\xff"),
]
write("ws_frame",
      [bytes([0xFE]) + frame for frame in ws_frames]
      + [bytes([0x01]) + ws_frames[0], bytes([0x00]) + ws_frames[3]]
      + [bytes([0xFF]) + frame for frame in ws_deflated]
      + [bytes([0x03]) + ws_deflated[0]])

UPGRADE = ("GET /path?x=1 HTTP/1.1\r\nHost: localhost:7512\r\nUpgrade: websocket\r\n"
           "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           "Sec-WebSocket-Version: 13\r\n")
write("ws_handshake", [
    b"\x00" + (UPGRADE + "\r\n").encode(),
    b"\x01" + (UPGRADE + "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n").encode(),
    b"\x01" + (UPGRADE + "Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10, permessage-deflate\r\n\r\n").encode(),
    b"\x01" + (UPGRADE + "Sec-WebSocket-Protocol: chat\r\nOrigin: http://a\r\n\r\n").encode(),
    b"\x00" + UPGRADE.replace("13", "8").encode() + b"\r\n",
    b"\x00POST / HTTP/1.1\r\nHost: x\r\n\r\n",
    b"\x00GET / HTTP/1.0\r\n\r\n",
    b"\x00" + UPGRADE.encode(),
    b"\x01dGhlIHNhbXBsZSBub25jZQ==",
    b"\x01permessage-deflate; client_no_context_takeover; server_no_context_takeover",
])

write("ws_inflate", [
    b"\x00" + deflate(REQUEST),
    b"\x00" + deflate(b"a" * 100000),
    b"\x00" + zlib.compress(b"zlib, not raw"),
    b"\x00\x00\x00\xff\xff",
    b"\x00\x03\x00",
    b"\x01" + REQUEST,
    b"\x01",
    b"\x01" + bytes(range(256)),
])

# mqtt_codec: every hex packet of the codec tests.
codec_tests = open(os.path.join(ROOT, "plugins/mqtt/src/codec_tests.rs")).read()
packets = [bytes.fromhex(hexes) for hexes in
           re.findall(r'"((?:[0-9a-f]{2} )+[0-9a-f]{2})"', codec_tests)]
CONNECT = bytes.fromhex("10 0e 00 04 4d 51 54 54 04 02 00 3c 00 02 61 62")
write("mqtt_codec", packets + [CONNECT + b"".join(packets[2:6])])

write("socketio_packets", [
    '40',
    '40/admin,{"token":"x"}',
    '42["kuzzle",' + REQUEST.decode() + ']',
    '421["kuzzle",' + SUBSCRIBE.decode() + ']',
    '42/ns,7["event",1,2]',
    '43["ack"]',
    '41',
    '44{"message":"x"}',
    '2probe', '3probe', '5', '6', '1',
    '42["kuzzle",{"a":1}]\x1e3\x1e42["other"]',
    'EIO=4&transport=polling&t=N8hyd6w&sid=abc',
    '451-["binary",{"_placeholder":true,"num":0}]',
])

ROUTE_LINES = [
    ("GET /_now", "", "", "", "", "", b""),
    ("GET /_now?pretty&a=1&a=2&b", "", "", "Bearer abc.def", '{"x":1}', "rid", b""),
    ("POST /i/c/_publish?refresh=wait_for", "application/json", "", "", "", "", b'{"a":1}'),
    ("POST /i/c/_publish", "application/x-www-form-urlencoded", "", "", "", "", b"a=1&b=%20x+y"),
    ("POST /i/c/_publish", "application/json; charset=utf-8", "gzip", "", "", "", zlib.compress(b'{"a":1}')),
    ("POST /_query", "application/json", "", "bearer t", "", "", SUBSCRIBE),
    ("POST /_query", "", "", "", "", "h1", REQUEST),
    ("POST /_query", "", "deflate", "", "", "", zlib.compress(REQUEST)),
    ("GET /i%2F/c%20d/some%2Fid?controller=x&action=y", "", "", "", "", "", b""),
    ("GET /_healthcheck", "", "", "", "", "", b""),
    ("PUT /i/c/_create", "text/plain", "", "", "", "", b"x"),
    ("GET /i/c/_mGet?ids=a,b", "", "identity, gzip", "", "", "", b""),
]


def http_seed(line, ctype, encoding, auth, volatile, request_id, body):
    return "\n".join([line, ctype, encoding, auth, volatile, request_id]).encode() + b"\n" + body


write("http_request", [http_seed(*fields) for fields in ROUTE_LINES])

write("host_request", [
    REQUEST, SUBSCRIBE,
    b'{"controller":"document","action":"create","index":"i","collection":"c","_id":"x",'
    b'"body":{"a":[1,2,{"b":null}]},"refresh":"wait_for","volatile":{"v":1},"jwt":"t"}',
    b'{"controller":"auth","action":"login","strategy":"local","body":{"username":"u","password":"p"}}',
    b'{"controller":"server","action":"now","requestId":"\\u00e9\\n"}',
    b'{"controller":null,"action":1}',
    b'{"controller":"x","controller":"y"}',
    b'[]', b'"text"', b'{', b'{"body":[]}', b'{"volatile":"x"}',
])

filters = [
    {}, {"equals": {"a": 1}}, {"equals": {"a.b.c": "x"}},
    {"in": {"a": ["x", "y"]}}, {"exists": "b"}, {"exists": {"field": "b"}},
    {"exists": 'a["x"]'}, {"missing": "a"}, {"ids": {"values": ["a", "b"]}},
    {"range": {"age": {"gte": 18, "lt": 65}}}, {"regexp": {"a": "^x.*y$"}},
    {"regexp": {"a": {"value": "ab+c", "flags": "i"}}},
    {"geoBoundingBox": {"loc": {"top": 44.0, "left": 3.0, "bottom": 43.0, "right": 4.0}}},
    {"geoDistance": {"loc": {"lat": 43.6, "lon": 3.9}, "distance": "1km"}},
    {"geoDistanceRange": {"loc": [43.6, 3.9], "from": "1km", "to": "10km"}},
    {"geoPolygon": {"loc": {"points": [[0, 0], [0, 1], [1, 1]]}}},
    {"and": [{"equals": {"a": 1}}, {"not": {"exists": "b"}}]},
    {"or": [{"equals": {"a": "y"}}, {"in": {"a": ["x"]}}]},
    {"bool": {"must": [{"exists": {"field": "b"}}], "must_not": [{"equals": {"a": 1}}],
              "should": [{"range": {"c": {"gt": 1}}}], "filter": [{"missing": "d"}]}},
    {"match": {"a": {"b": [1, 2]}}}, {"nothing": {}},
    {"select": {"field": "arr", "index": -1, "query": {"equals": {"value": 3}}}},
    {"and": [{"or": [{"equals": {"k%d" % j: i}} for i in range(4)]} for j in range(3)]},
]
documents = [{"a": 1, "b": 2}, {"age": 20, "loc": {"lat": 43.6, "lon": 3.9}}, {"a": "xzzy"}]
write("filters", [json.dumps(f) for f in filters]
      + [json.dumps([f, documents[i % 3]]) for i, f in enumerate(filters[1:12])])

configs = [open(os.path.join(ROOT, "config.toml"), "rb").read()]
configs += [
    b"[server]\nmaxRequestSize = \"1MB\"\n",
    b"[server]\n[server.protocols.websocket]\nlibrary = \"websocket\"\nport = 7512\n"
    b"idleTimeout = 60000\ncompression = true\n",
    b"[server.protocols.mqtt]\nlibrary = \"mqtt\"\nallowPubSub = true\nmaxRetainedMessages = 10\n",
    b"[limits]\nsubscriptionMinterms = 8\nsubscriptionConditionsCount = 3\n",
    b"[security]\n[security.authToken]\nsecret = \"x\"\n",
    b"[server]\nport = \"x\"\n",
    b"[cluster]\nenabled = true\n",
]
write("config", configs)
