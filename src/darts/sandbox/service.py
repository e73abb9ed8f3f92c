"""The running sandbox: every stand-in server for one built world, on 127.0.0.1.

One :class:`Sandbox` starts, on free loopback ports:

===============  ==========================================================
``cdse-stac``    CDSE STAC API (``/v1/``), collections sentinel-2-l2a and
                 sentinel-2-global-mosaics
``s3``           S3 API (moto) with bucket ``eodata``; refuses unsigned or
                 wrongly signed requests
``pgc-stac``     PGC STAC API (``/api/v1/``), ArcticDEM mosaic collections
``pgc-data``     anonymous byte-range HTTP for the ArcticDEM COGs and the
                 mosaic index zip
``tcvis-stac``   TCVIS mirror STAC API (``/stac/v1/``)
``tcvis-data``   anonymous byte-range HTTP for the TCVIS COGs
``earthengine``  Earth Engine REST (``image:computePixels`` over the TCVIS
                 COGs and the Sentinel-2 L2A products as
                 ``COPERNICUS/S2_SR_HARMONIZED``, whose ``listImages`` it
                 also answers) and the OAuth2 token endpoint (``/token``) of
                 a service account made for this sandbox
===============  ==========================================================

Each server is wrapped in a fault injector (off unless configured) that also records
every request, so tests can count downloads and the reliability suite can inject
429s, resets, truncation and latency.
"""

from __future__ import annotations

import configparser
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from darts.sandbox.faults_config import SERVER_NAMES
from darts.sandbox.layout import (
    PGC_DATA_PLACEHOLDER,
    TCVIS_DATA_PLACEHOLDER,
    WorldLayout,
)
from darts.sandbox.servers.earthengine import EarthEngineApp
from darts.sandbox.servers.ee_auth import SandboxServiceAccount, TokenIssuer
from darts.sandbox.servers.faults import FaultConfig, FaultInjector
from darts.sandbox.servers.pgc import pgc_data_app
from darts.sandbox.servers.runner import ServerThread
from darts.sandbox.servers.s3 import s3_app
from darts.sandbox.servers.stac_api import (
    StacApiApp,
    cdse_stac_config,
    pgc_stac_config,
    tcvis_stac_config,
)
from darts.sandbox.servers.static import range_file_app
from darts.store.atomic import atomic_write_text

ARCTICDEM_INDEX_PATH = "/elev/dem/setsm/ArcticDEM/indexes/ArcticDEM_Mosaic_Index_latest_gpqt.zip"
SANDBOX_PROFILE = "darts-sandbox"


@dataclass(frozen=True)
class SandboxCredentials:
    """Dummy S3 keys for the stand-in. They guard nothing but make clients sign their
    requests the way CDSE requires, so a missing credential fails here as it would
    there."""

    access_key_id: str = "DARTSSANDBOXACCESSKEY"
    secret_access_key: str = "darts-sandbox-secret-key-not-a-real-secret"

    def __repr__(self) -> str:
        return f"SandboxCredentials(access_key_id={self.access_key_id!r}, secret=***)"


@dataclass(frozen=True)
class SandboxEndpoints:
    """The endpoint settings that point darts at a running sandbox."""

    cdse_stac_url: str
    cdse_s3_endpoint: str
    pgc_stac_url: str
    arcticdem_index_url: str
    tcvis_stac_url: str
    pgc_data_url: str
    tcvis_data_url: str
    earth_engine_url: str
    ee_project: str


class Sandbox:
    """All stand-ins for one world. Use as a context manager or call start/stop."""

    def __init__(
        self,
        layout: WorldLayout,
        faults: Mapping[str, FaultConfig] | None = None,
        credentials: SandboxCredentials | None = None,
        seed: int = 0,
    ) -> None:
        if not layout.is_built():
            raise FileNotFoundError(f"no built sandbox world at {layout.root}")
        unknown = set(faults or {}) - set(SERVER_NAMES)
        if unknown:
            raise ValueError(
                f"unknown sandbox server(s) {sorted(unknown)}; known: {', '.join(SERVER_NAMES)}"
            )
        self.layout = layout
        self.credentials = credentials or SandboxCredentials()
        self._faults = dict(faults or {})
        self._seed = seed
        # One key per sandbox: a key file from another sandbox must not work here.
        self.service_account = SandboxServiceAccount.generate()
        self.token_issuer = TokenIssuer(self.service_account)
        self._servers: dict[str, ServerThread] = {}
        self._injectors: dict[str, FaultInjector] = {}

    # -- life cycle -------------------------------------------------------------------

    def start(self) -> Sandbox:
        if self._servers:
            return self
        try:
            self._start_all()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_all(self) -> None:
        layout = self.layout
        # Data servers first: the STAC APIs rewrite hrefs to their URLs.
        self._serve(
            "s3", s3_app(layout, self.credentials.access_key_id, self.credentials.secret_access_key)
        )
        self._serve("pgc-data", pgc_data_app(layout, lambda: self.endpoints.pgc_stac_url))
        self._serve("tcvis-data", range_file_app(layout.tcvis_data))

        pgc_config = pgc_stac_config(layout)
        pgc_config.href_rewrites[PGC_DATA_PLACEHOLDER] = self._servers["pgc-data"].url + "/"
        self._serve("pgc-stac", StacApiApp(pgc_config))

        tcvis_config = tcvis_stac_config(layout)
        tcvis_config.href_rewrites[TCVIS_DATA_PLACEHOLDER] = self._servers["tcvis-data"].url + "/"
        self._serve("tcvis-stac", StacApiApp(tcvis_config))
        self._serve("cdse-stac", StacApiApp(cdse_stac_config(layout)))
        self._serve("earthengine", EarthEngineApp(layout, self.token_issuer))

    def _serve(self, name: str, app: object) -> None:
        injector = FaultInjector(app, name, self._faults.get(name), seed=self._seed)
        server = ServerThread(injector).start()
        self._injectors[name] = injector
        self._servers[name] = server

    def stop(self) -> None:
        for server in reversed(list(self._servers.values())):
            server.stop()
        for injector in self._injectors.values():
            # The S3 stand-in keeps moto state per sandbox; drop it with the server.
            close = getattr(injector.app, "close", None)
            if callable(close):
                close()
        self._servers.clear()
        self._injectors.clear()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what clients need ------------------------------------------------------------

    def url(self, name: str) -> str:
        return self._servers[name].url

    def injector(self, name: str) -> FaultInjector:
        return self._injectors[name]

    def set_faults(self, name: str, config: FaultConfig) -> None:
        self._injectors[name].set_config(config)

    def clear_requests(self) -> None:
        for injector in self._injectors.values():
            injector.clear_requests()

    @property
    def endpoints(self) -> SandboxEndpoints:
        return SandboxEndpoints(
            cdse_stac_url=self.url("cdse-stac") + "/v1/",
            cdse_s3_endpoint=self.url("s3"),
            pgc_stac_url=self.url("pgc-stac") + "/api/v1/",
            arcticdem_index_url=self.url("pgc-data") + ARCTICDEM_INDEX_PATH,
            tcvis_stac_url=self.url("tcvis-stac") + "/stac/v1/",
            pgc_data_url=self.url("pgc-data"),
            tcvis_data_url=self.url("tcvis-data"),
            earth_engine_url=self.url("earthengine"),
            ee_project=self.service_account.project,
        )

    def ee_key_file(self) -> dict[str, str]:
        """The sandbox service account as a Google key file (JSON object); its
        token_uri is this sandbox's Earth Engine stand-in."""
        return self.service_account.key_file(self.url("earthengine") + "/token")

    def write_config(self, path: Path) -> Path:
        """Write a darts TOML config pointing at this sandbox, plus an AWS credentials
        file beside it holding the dummy keys (the config names the profile, so the
        keys never appear in darts' own settings or output), and the sandbox's
        service-account key file for Earth Engine."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        credentials_file = path.with_name(path.stem + "-aws-credentials")
        parser = configparser.ConfigParser()
        parser[SANDBOX_PROFILE] = {
            "aws_access_key_id": self.credentials.access_key_id,
            "aws_secret_access_key": self.credentials.secret_access_key,
        }
        _write_atomically(credentials_file, _ini_text(parser))
        ee_key_file = path.with_name(path.stem + "-ee-service-account.json")
        _write_atomically(ee_key_file, json.dumps(self.ee_key_file(), indent=2), private=True)
        ep = self.endpoints
        lines = [
            "# Written by `darts sandbox serve`: points darts at local stand-ins.",
            f"# World: {self.layout.root}",
            "[darts.endpoints]",
            f'cdse-stac-url = "{ep.cdse_stac_url}"',
            f'cdse-s3-endpoint = "{ep.cdse_s3_endpoint}"',
            f'pgc-stac-url = "{ep.pgc_stac_url}"',
            f'arcticdem-index-url = "{ep.arcticdem_index_url}"',
            f'tcvis-stac-url = "{ep.tcvis_stac_url}"',
            f'aws-profile = "{SANDBOX_PROFILE}"',
            f'aws-credentials-file = "{credentials_file.resolve()}"',
            f'earth-engine-url = "{ep.earth_engine_url}"',
            # One stand-in answers for both Earth Engine endpoints.
            f'earth-engine-highvolume-url = "{ep.earth_engine_url}"',
            f'ee-project = "{ep.ee_project}"',
            f'ee-credentials-file = "{ee_key_file.resolve()}"',
            'tcvis-source = "gee"',
            "",
        ]
        _write_atomically(path, "\n".join(lines))
        return path


def _ini_text(parser: configparser.ConfigParser) -> str:
    import io

    buffer = io.StringIO()
    parser.write(buffer)
    return buffer.getvalue()


def _write_atomically(path: Path, text: str, *, private: bool = False) -> None:
    # Owner-only from the start when private: a key file others can read is a leaked
    # key (even a sandbox key should not teach otherwise).
    atomic_write_text(path, text, fsync=False, private=private)
