"""Kuzzle over MQTT with paho-mqtt, for tests/tests/mqtt.rs.

Usage:
  kuzzle_mqtt.py request HOST PORT REQUEST_JSON
      Publishes one request on Kuzzle/request; prints its response (one JSON line).
  kuzzle_mqtt.py subscribe HOST PORT INDEX COLLECTION COUNT
      realtime:subscribe through Kuzzle/request, then subscribes to result.channel's topic;
      prints "ready <channel>", then COUNT notifications as "<topic> <json>" lines.
  kuzzle_mqtt.py private HOST PORT
      Two clients subscribed to Kuzzle/response each send a request; each must receive its
      own response and never the other's. Prints "ok".
Every mode gives up after 10 seconds with exit status 1.
"""

import json
import queue
import sys

import paho.mqtt.client as mqtt

REQUEST_TOPIC = "Kuzzle/request"
RESPONSE_TOPIC = "Kuzzle/response"
TIMEOUT = 10


class Client:
    """A paho client whose events arrive on one queue: ("suback", codes) or ("message", topic, payload)."""

    def __init__(self, host, port, client_id):
        self.events = queue.Queue()
        if hasattr(mqtt, "CallbackAPIVersion"):  # paho-mqtt 2.x
            self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id)
        else:  # paho-mqtt 1.x (Debian's python3-paho-mqtt)
            self.client = mqtt.Client(client_id=client_id)
        # Version 2 passes reason codes (with .value) and a properties argument; 1.x ints.
        self.client.on_subscribe = lambda c, u, mid, codes, *rest: self.events.put(
            ("suback", [int(getattr(code, "value", code)) for code in codes])
        )
        self.client.on_message = lambda c, u, msg: self.events.put(
            ("message", msg.topic, msg.payload.decode())
        )
        connected = queue.Queue()
        self.client.on_connect = lambda c, u, flags, code, *rest: connected.put(
            int(getattr(code, "value", code))
        )
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()
        code = connected.get(timeout=TIMEOUT)
        if code != 0:
            raise SystemExit(f"CONNACK refused: {code}")

    def next(self):
        return self.events.get(timeout=TIMEOUT)

    def subscribe(self, topic, qos=0):
        self.client.subscribe(topic, qos)
        event = self.next()
        assert event[0] == "suback", event
        return event[1]

    def request(self, request):
        self.client.publish(REQUEST_TOPIC, json.dumps(request), qos=1)
        while True:
            event = self.next()
            if event[0] == "message" and event[1] == RESPONSE_TOPIC:
                response = json.loads(event[2])
                if response.get("requestId") == request["requestId"]:
                    return response
                raise SystemExit(f"received someone else's response: {event[2]}")


def main(argv):
    mode, host, port = argv[1], argv[2], int(argv[3])
    if mode == "request":
        client = Client(host, port, "py-request")
        client.subscribe(RESPONSE_TOPIC)
        print(json.dumps(client.request(json.loads(argv[4]))), flush=True)
    elif mode == "subscribe":
        index, collection, count = argv[4], argv[5], int(argv[6])
        client = Client(host, port, "py-subscriber")
        client.subscribe(RESPONSE_TOPIC)
        response = client.request({
            "controller": "realtime", "action": "subscribe", "requestId": "sub-1",
            "index": index, "collection": collection, "body": {},
        })
        channel = response["result"]["channel"]
        codes = client.subscribe(channel)
        assert codes == [0], codes
        print(f"ready {channel}", flush=True)
        for _ in range(count):
            event = client.next()
            assert event[0] == "message", event
            print(f"{event[1]} {event[2]}", flush=True)
    elif mode == "private":
        first = Client(host, port, "py-first")
        second = Client(host, port, "py-second")
        first.subscribe(RESPONSE_TOPIC)
        second.subscribe(RESPONSE_TOPIC)
        # Each raises if the first response it reads is not its own.
        first.request({"controller": "server", "action": "now", "requestId": "first"})
        second.request({"controller": "server", "action": "now", "requestId": "second"})
        first.request({"controller": "server", "action": "now", "requestId": "first-again"})
        print("ok", flush=True)
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main(sys.argv)
