"""Test media: a switchable RTSP test camera (GStreamer) and an ONVIF peer."""
