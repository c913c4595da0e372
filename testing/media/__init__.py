"""Test media: a switchable RTSP test camera (GStreamer, system python3) and an ONVIF peer. See NOTES.md."""
