"""What the tests and the benchmarks share: real local peers and the gateway as a process.

peers (mosquitto, an MQTT subscriber, free_port, wait_until) · gateway (GatewayProcess: config,
spawn, wait-ready, stop; DoorPeers: a card reader and a relay board on socat ptys) · faces (the
shared photo set) · media (an RTSP test camera, an ONVIF peer). Never imported by the product.
"""
