"""`accessgw check`: for an installer, does each configured device answer?"""

from __future__ import annotations

from collections.abc import Iterator

from config.models import GatewayConfig
from drivers.modbus_io import probe_io_module
from drivers.serial_reader import probe_reader_port
from sync.mqtt_client import probe_broker


def run_checks(cfg: GatewayConfig) -> Iterator[tuple[str, bool]]:
    """Yield (one line, passed) per reader, I/O module and the broker."""
    for reader in cfg.readers:
        problem = probe_reader_port(reader)
        where = f"reader {reader.id} ({reader.protocol} on {reader.port} @ {reader.baudrate})"
        yield (f"{where}: {problem or 'port opens'}", problem is None)
    for module in cfg.io_modules:
        problem = probe_io_module(module)
        where = f"io {module.id} (modbus unit {module.unit} on {module.port} @ {module.baudrate})"
        yield (f"{where}: {problem or 'answers'}", problem is None)
    if cfg.cameras:
        from drivers.rtsp_capture import probe_camera  # OpenCV loads only where cameras exist

        for camera in cfg.cameras:
            problem = probe_camera(camera)
            source = f"onvif {camera.onvif.host}:{camera.onvif.port}" if camera.onvif else "rtsp_url"
            yield (f"camera {camera.id} ({source}): {problem or 'frames arrive'}", problem is None)
    problem = probe_broker(cfg.mqtt)
    yield (f"broker {cfg.mqtt.host}:{cfg.mqtt.port}: {problem or 'accepts the connection'}", problem is None)
