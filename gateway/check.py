"""`accessgw check`: for an installer, does each configured device answer?"""

from __future__ import annotations

from collections.abc import Iterator

from config.models import GatewayConfig
from drivers.modbus_io import probe_io_module
from drivers.serial_reader import probe_reader_port
from gateway.api.tls import check_line
from sync.mqtt_client import probe_broker


def run_checks(cfg: GatewayConfig) -> Iterator[tuple[str, bool]]:
    """Yield (one line, passed) per reader, I/O module, camera, the broker and the API's certificate."""
    osdp = [r for r in cfg.readers if r.protocol == "osdp"]
    answers: dict[str, str | None] = {}
    if osdp:
        from drivers.osdp_reader import probe_osdp_readers  # libosdp loads only where OSDP readers exist

        answers = probe_osdp_readers(osdp)  # each bus once, all its readers together
    for reader in cfg.readers:
        if reader.protocol == "osdp":
            problem = answers.get(reader.id)
            where = f"reader {reader.id} (osdp address {reader.address} on {reader.port} @ {reader.baudrate})"
            yield (f"{where}: {problem or 'answers with a secure channel'}", problem is None)
            continue
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
    if cfg.api.tls_cert_file is not None:
        yield check_line(cfg.api)
