"""S3Client against moto on 127.0.0.1: verified downloads, retries, auth errors, offline."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import boto3
import numpy as np
import pytest
import rasterio
import rasterio.env
from affine import Affine
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from rasterio.io import MemoryFile
from test_net_support import fast_settings, serve

from darts.net import (
    ChecksumMismatch,
    CredentialsError,
    NetworkError,
    NetworkGate,
    NetworkSettings,
    OfflineError,
    S3Client,
    S3Error,
    S3Location,
    S3Settings,
    forbid_sockets,
    gdal_env,
    parse_s3_href,
    remote_raster_env,
    to_multihash,
)
from darts.net.unreachable import EndpointUnreachable
from darts.sandbox.servers.runner import ServerThread

# moto's state is process-wide and bucket names are unique across its accounts: a
# name of our own keeps this module clear of the sandbox's "eodata" stand-in.
BUCKET = f"darts-net-test-{uuid.uuid4().hex[:8]}"
KEY = "Sentinel-2/MSI/L2A/2024/07/01/S2B_TEST.SAFE/GRANULE/IMG_DATA/R10m/T36NYH_B02_10m.jp2"
DATA = bytes(range(256)) * 4096  # 1 MiB
SHA3 = to_multihash("sha3-256", DATA)
SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>'
    b"<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>"
)


class Flaky:
    """WSGI middleware around moto: fail or corrupt the next N object GETs on request."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.lock = threading.Lock()
        self.fail_next = 0
        self.corrupt_next = 0
        self.truncate_next = 0
        self.latency_s = 0.0
        self.gets = 0
        self.in_flight = 0
        self.max_in_flight = 0

    def reset(self) -> None:
        with self.lock:
            self.fail_next = self.corrupt_next = self.truncate_next = 0
            self.gets = self.max_in_flight = 0
            self.latency_s = 0.0

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        is_object_get = environ["REQUEST_METHOD"] == "GET" and environ["PATH_INFO"].count("/") > 1
        if not is_object_get:
            return self.app(environ, start_response)
        with self.lock:
            self.gets += 1
            fail = self.fail_next > 0
            self.fail_next -= fail
            corrupt = self.corrupt_next > 0
            self.corrupt_next -= corrupt
            truncate = self.truncate_next > 0
            self.truncate_next -= truncate
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            time.sleep(self.latency_s)
            if fail:
                start_response(
                    "503 Slow Down",
                    [("Content-Type", "application/xml"), ("Content-Length", str(len(SLOW_DOWN)))],
                )
                return [SLOW_DOWN]
            body = b"".join(self.app(environ, start_response))
            if corrupt and body:
                body = bytes([body[0] ^ 0xFF]) + body[1:]  # same length, wrong bytes
            if truncate:
                # Content-Length was already declared in full: the client sees a short read.
                body = body[: len(body) // 2]
            return [body]
        finally:
            with self.lock:
                self.in_flight -= 1


@pytest.fixture(scope="module")
def moto() -> Iterator[tuple[str, Flaky]]:
    flaky = Flaky(DomainDispatcherApplication(create_backend_app))
    server = ServerThread(flaky, request_handler=MotoRequestHandler, name="moto")
    with server:
        s3 = boto3.client(
            "s3",
            endpoint_url=server.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key=KEY, Body=DATA)
        yield server.url, flaky
        flaky.reset()
        for obj in s3.list_objects_v2(Bucket=BUCKET).get("Contents", []):
            s3.delete_object(Bucket=BUCKET, Key=obj["Key"])
        s3.delete_bucket(Bucket=BUCKET)


@pytest.fixture
def endpoint(moto: tuple[str, Flaky]) -> Iterator[str]:
    moto[1].reset()
    yield moto[0]
    moto[1].reset()


@pytest.fixture
def flaky(moto: tuple[str, Flaky]) -> Flaky:
    return moto[1]


def s3_settings(url: str) -> S3Settings:
    return S3Settings(endpoint_url=url, access_key_id="testing", secret_access_key="testing")


def make_client(url: str, **net: Any) -> S3Client:
    return S3Client(s3_settings(url), fast_settings(**net), gate=NetworkGate())


def test_parse_s3_href() -> None:
    assert parse_s3_href(f"s3://{BUCKET}/{KEY}") == S3Location(BUCKET, KEY)
    assert parse_s3_href(("eodata", "k")).href == "s3://eodata/k"
    for bad in ("https://x/y", "s3://bucket", "s3:///key"):
        with pytest.raises(ValueError):
            parse_s3_href(bad)


def test_get_object_bytes_verified(endpoint: str) -> None:
    seen: list[int] = []
    client = S3Client(
        s3_settings(endpoint), fast_settings(), gate=NetworkGate(), on_bytes=seen.append
    )
    with client:
        data = client.get_object_bytes(
            f"s3://{BUCKET}/{KEY}", purpose="test", expected_size=len(DATA), checksum=SHA3
        )
        info = client.head((BUCKET, KEY), purpose="test")
    assert data == DATA and info.size == len(DATA) and info.etag
    assert sum(seen) == len(DATA)
    assert client.counter.snapshot().requests == 2


def test_checksum_mismatch_is_refetched(endpoint: str, flaky: Flaky) -> None:
    flaky.corrupt_next = 1
    with make_client(endpoint) as client:
        assert client.get_object_bytes(f"s3://{BUCKET}/{KEY}", purpose="t", checksum=SHA3) == DATA
    assert flaky.gets == 2


def test_persistent_mismatch_raises_after_retries(endpoint: str, flaky: Flaky) -> None:
    wrong = to_multihash("sha3-256", b"something else")
    with make_client(endpoint, max_retries=2) as client, pytest.raises(ChecksumMismatch) as info:
        client.get_object_bytes(f"s3://{BUCKET}/{KEY}", purpose="t", checksum=wrong)
    assert flaky.gets == 3 and info.value.attempts == 3
    assert f"s3://{BUCKET}/{KEY}" in str(info.value)


def test_slow_down_is_retried(endpoint: str, flaky: Flaky) -> None:
    flaky.fail_next = 2
    with make_client(endpoint) as client:
        assert client.get_object_bytes((BUCKET, KEY), purpose="t", expected_size=len(DATA)) == DATA
        assert client.counter.snapshot().retries == 2


def test_truncated_body_is_retried(endpoint: str, flaky: Flaky) -> None:
    flaky.truncate_next = 1
    with make_client(endpoint) as client:
        assert client.get_object_bytes((BUCKET, KEY), purpose="t") == DATA
        assert client.counter.snapshot().retries == 1
    assert flaky.gets == 2


def test_missing_key_is_not_retried(endpoint: str, flaky: Flaky) -> None:
    with make_client(endpoint) as client, pytest.raises(S3Error) as info:
        client.get_object_bytes((BUCKET, "no/such/key"), purpose="t")
    assert info.value.status == 404 and info.value.code == "NoSuchKey"
    assert flaky.gets == 1


def test_download_to_file_is_atomic(endpoint: str, flaky: Flaky, tmp_path: Path) -> None:
    target = tmp_path / "scene" / "B02.jp2"
    with make_client(endpoint, max_retries=1) as client:
        client.download_to_file((BUCKET, KEY), target, purpose="t", checksum=SHA3)
        assert target.read_bytes() == DATA
        other = tmp_path / "scene" / "B03.jp2"
        flaky.corrupt_next = 2
        with pytest.raises(ChecksumMismatch):
            client.download_to_file((BUCKET, KEY), other, purpose="t", checksum=SHA3)
    assert sorted(p.name for p in target.parent.iterdir()) == ["B02.jp2"]


def test_concurrency_bound(endpoint: str, flaky: Flaky) -> None:
    flaky.latency_s = 0.05
    with make_client(endpoint, max_concurrency=2) as client:
        threads = [
            threading.Thread(
                target=client.get_object_bytes, args=((BUCKET, KEY),), kwargs={"purpose": "t"}
            )
            for _ in range(6)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert flaky.gets == 6 and flaky.max_in_flight == 2


def test_offline_refuses_before_credentials_or_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials")
    client = S3Client(S3Settings(), NetworkSettings(offline=True))  # no keys anywhere
    with forbid_sockets() as audit, pytest.raises(OfflineError) as info:
        client.get_object_bytes(f"s3://{BUCKET}/{KEY}", purpose="download B02 of S2B_TEST")
    message = str(info.value)
    assert f"https://eodata.dataspace.copernicus.eu/{BUCKET}/Sentinel-2/" in message
    assert "(wanted: download B02 of S2B_TEST)" in message
    assert audit.blocked == []


class Forbidden:
    """An S3 endpoint that rejects the access key, echoing it like real S3 does."""

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        body = (
            b"<Error><Code>InvalidAccessKeyId</Code><Message>The AWS Access Key Id you "
            b"provided does not exist in our records.</Message>"
            b"<AWSAccessKeyId>AKIDLEAKY</AWSAccessKeyId></Error>"
        )
        if environ["REQUEST_METHOD"] == "HEAD":
            body = b""
        start_response(
            "403 Forbidden",
            [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))],
        )
        return [body]


def test_auth_errors_become_one_clear_credentials_error() -> None:
    with serve(Forbidden()) as url:
        settings = S3Settings(
            endpoint_url=url, access_key_id="AKIDLEAKY", secret_access_key="VERYSECRET"
        )
        with S3Client(settings, fast_settings(), gate=NetworkGate()) as client:
            with pytest.raises(CredentialsError) as get_info:
                client.get_object_bytes((BUCKET, KEY), purpose="t")
            with pytest.raises(CredentialsError) as head_info:
                client.head((BUCKET, KEY), purpose="t")
    for err in (get_info.value, head_info.value):
        message = str(err)
        assert "InvalidAccessKeyId" in message or "HTTP 403" in message
        assert url in message and f"s3://{BUCKET}/{KEY}" in message
        assert "explicit settings" in message and "AWS_ACCESS_KEY_ID" in message
        assert "AKIDLEAKY" not in message and "VERYSECRET" not in message
        # No chained botocore exception carrying request details into tracebacks.
        assert err.__cause__ is None and err.__suppress_context__
        assert err.attempts == 1


def test_gdal_env_options() -> None:
    opts = gdal_env(s3_settings("http://127.0.0.1:9000"), NetworkSettings(timeout_s=(5, 30)))
    assert opts["AWS_S3_ENDPOINT"] == "127.0.0.1:9000" and opts["AWS_HTTPS"] == "NO"
    assert opts["AWS_VIRTUAL_HOSTING"] == "FALSE"
    assert opts["AWS_ACCESS_KEY_ID"] == "testing"
    assert opts["GDAL_DISABLE_READDIR_ON_OPEN"] == "EMPTY_DIR"
    assert opts["CPL_VSIL_CURL_CHUNK_SIZE"] == "10485760" and opts["VSI_CACHE"] == "TRUE"
    assert opts["GDAL_HTTP_CONNECTTIMEOUT"] == "5" and opts["GDAL_HTTP_LOW_SPEED_TIME"] == "30"
    cdse = gdal_env(S3Settings(access_key_id="k", secret_access_key="s"))
    assert cdse["AWS_S3_ENDPOINT"] == "eodata.dataspace.copernicus.eu"
    assert cdse["AWS_HTTPS"] == "YES" and cdse["AWS_REGION"] == "default"


def test_rasterio_reads_s3_in_a_scoped_env(endpoint: str) -> None:
    array = np.arange(64, dtype="uint16").reshape(8, 8)
    with MemoryFile() as mem:
        profile = {
            "driver": "GTiff",
            "width": 8,
            "height": 8,
            "count": 1,
            "dtype": "uint16",
            "crs": "EPSG:3413",
            "transform": Affine(10, 0, 0, 0, -10, 80),
        }
        with mem.open(**profile) as dst:
            dst.write(array, 1)
        boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        ).put_object(Bucket=BUCKET, Key="cog/test.tif", Body=mem.read())

    href = f"s3://{BUCKET}/cog/test.tif"
    net = fast_settings()
    with remote_raster_env(href, purpose="read test.tif", s3=s3_settings(endpoint), net=net):
        assert rasterio.env.getenv()["AWS_S3_ENDPOINT"] == endpoint.removeprefix("http://")
        with rasterio.open(href) as src:
            assert (src.read(1) == array).all()
    # Scoped: nothing of it is left in the process-wide GDAL configuration.
    assert not rasterio.env.hasenv()

    offline = NetworkSettings(offline=True)
    with (
        pytest.raises(OfflineError, match=r"read test\.tif"),
        remote_raster_env(href, purpose="read test.tif", s3=s3_settings(endpoint), net=offline),
    ):
        pytest.fail("GDAL must not be configured when offline")


def test_missing_aws_profile_env_does_not_break_env_keys(
    endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # AWS_PROFILE names a profile that exists nowhere; the env keys must still be used.
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AWS_PROFILE", "does-not-exist")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    settings = S3Settings(endpoint_url=endpoint)
    with S3Client(settings, fast_settings(), gate=NetworkGate()) as client:
        assert client.head((BUCKET, KEY), purpose="t").size == len(DATA)


def test_an_unreachable_s3_endpoint_is_one_line_then_not_tried_again() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    settings = S3Settings(
        endpoint_url=f"http://127.0.0.1:{port}", access_key_id="AK", secret_access_key="SK"
    )
    with S3Client(settings, fast_settings(max_retries=1), gate=NetworkGate()) as client:
        with pytest.raises(NetworkError) as first:
            client.get_object_bytes("s3://eodata/a/b.jp2", purpose="test")
        assert str(first.value) == (
            f"S3 GET s3://eodata/a/b.jp2: cannot connect to http://127.0.0.1:{port} "
            "(Connection refused) (gave up after 2 attempts)"
        )
        with pytest.raises(EndpointUnreachable):
            client.head("s3://eodata/a/c.jp2", purpose="test")
        assert client.counter.snapshot().requests == 2
