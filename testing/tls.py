"""A town's certificates and its TLS broker for tests: a CA made with the openssl CLI (the commands of
README "Town link: broker, certificates, keys") and mosquitto started with the shipped
config/mosquitto files, templated only for paths and the port, on a free 127.0.0.1 port."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from testing.peers import Mosquitto

SHIPPED = Path(__file__).resolve().parent.parent / "config" / "mosquitto"
CURVE = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]


def _openssl(*args: str, cwd: Path) -> None:
    exe = shutil.which("openssl")
    if exe is None:
        raise RuntimeError("the openssl CLI is not installed")
    done = subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=30)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)}: {done.stderr.strip()}")


class TownCa:
    """A certificate authority in `directory`: `ca.crt`, `ca.key`; `issue` makes leaf certificates."""

    def __init__(self, directory: Path, name: str = "Test Town CA") -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.crt = self.dir / "ca.crt"
        self.key = self.dir / "ca.key"
        _openssl(
            "req", "-x509", *CURVE, "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "30",
            "-subj", f"/CN={name}",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
            cwd=self.dir,
        )  # fmt: skip
        self.key.chmod(0o600)

    def issue(self, cn: str, server_names: list[str] | None = None, expired: bool = False) -> tuple[Path, Path]:
        """A key and a certificate for `cn`: a client certificate, or a server one for `server_names`;
        `expired`: valid only in January 2020."""
        stem = ("expired-" if expired else "") + (cn if server_names is None else f"server-{cn}")
        key, csr, crt, ext = (self.dir / f"{stem}.{suffix}" for suffix in ("key", "csr", "crt", "ext"))
        _openssl("req", *CURVE, "-nodes", "-keyout", key.name, "-out", csr.name, "-subj", f"/CN={cn}", cwd=self.dir)
        key.chmod(0o600)
        lines = ["basicConstraints=CA:FALSE", "keyUsage=critical,digitalSignature"]
        if server_names is None:
            lines.append("extendedKeyUsage=clientAuth")
        else:
            names = [f"IP:{n}" if n.replace(".", "").isdigit() else f"DNS:{n}" for n in server_names]
            lines += ["extendedKeyUsage=serverAuth", "subjectAltName=" + ",".join(names)]
        ext.write_text("\n".join(lines) + "\n")
        if expired:
            self._sign_backdated(csr, crt, ext)
            return crt, key
        _openssl(
            "x509", "-req", "-in", csr.name, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", crt.name, "-days", "30", "-extfile", ext.name,
            cwd=self.dir,
        )  # fmt: skip
        return crt, key

    def _sign_backdated(self, csr: Path, crt: Path, ext: Path) -> None:
        # `openssl x509` (3.0) cannot set past dates; `openssl ca` can, with its small database.
        conf = self.dir / "ca.cnf"
        if not conf.exists():
            (self.dir / "index.txt").write_text("")
            (self.dir / "serial.txt").write_text("1000\n")
            conf.write_text(
                "[ca]\ndefault_ca = town\n[town]\ndatabase = index.txt\nnew_certs_dir = .\nserial = serial.txt\n"
                "default_md = sha256\npolicy = any\nunique_subject = no\n[any]\ncommonName = supplied\n"
            )
        _openssl(
            "ca", "-batch", "-config", conf.name, "-cert", "ca.crt", "-keyfile", "ca.key", "-notext",
            "-in", csr.name, "-out", crt.name, "-extfile", ext.name,
            "-startdate", "20200101000000Z", "-enddate", "20200131000000Z",
            cwd=self.dir,
        )  # fmt: skip


class TlsMosquitto(Mosquitto):
    """mosquitto with the shipped config/mosquitto/accessgw.conf and accessgw.acl, on a free loopback port."""

    def __init__(self, workdir: Path, ca: TownCa, server_cert: Path, server_key: Path) -> None:
        self._prepare(workdir)
        self.log = self.dir / "mosquitto.log"
        self.conf = self.dir / "mosquitto.conf"
        text = (SHIPPED / "accessgw.conf").read_text()
        for shipped, here in (
            ("listener 8883", f"listener {self.port} 127.0.0.1"),
            ("/etc/mosquitto/accessgw.acl", str(SHIPPED / "accessgw.acl")),
            ("/etc/mosquitto/certs/town-ca.crt", str(ca.crt)),
            ("/etc/mosquitto/certs/broker.crt", str(server_cert)),
            ("/etc/mosquitto/certs/broker.key", str(server_key)),
        ):
            assert shipped in text, f"the shipped mosquitto config no longer has {shipped!r}"
            text = text.replace(shipped, here)
        # Test-only: no persistence (the shipped `persistence true` would write ./mosquitto.db and read it back at
        # the next run), a log to read; `user root` keeps a root-started broker able to read the keys.
        text += f"\npersistence false\nlog_dest file {self.log}\nlog_type all\nuser root\n"
        self.conf.write_text(text)
