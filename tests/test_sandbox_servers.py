"""The sandbox stand-in servers: S3 (moto + SigV4), range HTTP, PGC data, faults.

Inputs are built here in temporary folders (the world builder is tested elsewhere), and
every connection goes to 127.0.0.1.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import os
import shutil
import socket
import time
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import botocore
import numpy as np
import pyarrow.parquet as pq
import pytest
import rasterio
import requests
from affine import Affine
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials
from botocore.exceptions import ClientError

from darts.sandbox.layout import PGC_DATA_PLACEHOLDER, PGC_STAC_PLACEHOLDER, WorldLayout
from darts.sandbox.servers.fault_schedule import FaultSchedule
from darts.sandbox.servers.faults import FaultConfig, FaultInjector
from darts.sandbox.servers.pgc import ARCTICDEM_INDEX_PATH, pgc_data_app
from darts.sandbox.servers.runner import ServerThread
from darts.sandbox.servers.s3 import S3StandIn, s3_app
from darts.sandbox.servers.sigv4 import SigV4Verifier
from darts.sandbox.servers.static import parse_range, range_file_app

ACCESS_KEY = "SANDBOXTESTACCESSKEY"
SECRET_KEY = "sandbox-test-secret"
BAND_KEY = "Sentinel-2/MSI/L2A/2024/07/01/S2A_TEST.SAFE/GRANULE/G/IMG_DATA/R10m/T55WFR_B02_10m.jp2"
COG_PATH = "arcticdem/mosaics/v4.1/10m/58_05/58_05_10m_v4.1_dem.tif"
BLOB = bytes(range(256)) * 400  # 102,400 bytes with position-dependent content


# -- inputs ------------------------------------------------------------------------


def _band() -> np.ndarray:
    return (np.arange(64 * 64, dtype=np.uint16).reshape(64, 64) * 7) % 4000 + 1


def _dem() -> np.ndarray:
    y, x = np.mgrid[0:256, 0:256]
    return (100 + 0.5 * x - 0.25 * y).astype("float32")


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> WorldLayout:
    import geopandas as gpd
    import pandas as pd
    from shapely.geometry import box

    layout = WorldLayout(tmp_path_factory.mktemp("world") / "test-seed0")
    band = layout.s3_object("eodata", BAND_KEY)
    band.parent.mkdir(parents=True)
    profile = {
        "driver": "JP2OpenJPEG",
        "width": 64,
        "height": 64,
        "count": 1,
        "dtype": "uint16",
        "crs": "EPSG:32655",
        "transform": Affine(10, 0, 600000, 0, -10, 7600020),
        "QUALITY": 100,
        "REVERSIBLE": "YES",
    }
    with rasterio.open(band, "w", **profile) as ds:
        ds.write(_band(), 1)
    # Separate copies for the refused reads: GDAL caches per file name in-process.
    for other in ("B03", "B04"):
        shutil.copy(band, layout.s3_object("eodata", BAND_KEY.replace("B02", other)))
    for key, data in {"a/blob.bin": BLOB, "a/b/hello.txt": b"hello\n", "b/c.txt": b"c"}.items():
        target = layout.s3_object("eodata", key)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)

    cog = layout.pgc_data / COG_PATH
    cog.parent.mkdir(parents=True)
    with rasterio.open(
        cog,
        "w",
        driver="COG",
        width=256,
        height=256,
        count=1,
        dtype="float32",
        crs="EPSG:3413",
        transform=Affine(10, 0, -100000, 0, -10, 100000),
        nodata=-9999,
        BLOCKSIZE=128,
    ) as ds:
        ds.write(_dem(), 1)

    layout.pgc_index.mkdir(parents=True)
    index = gpd.GeoDataFrame(
        {
            "dem_id": ["58_05_10m_v4.1", "58_06_10m_v4.1"],
            "supertile": ["58_05", "58_06"],
            "gsd": [10.0, 10.0],
            "fileurl": [PGC_DATA_PLACEHOLDER + COG_PATH, PGC_DATA_PLACEHOLDER + "x/58_06.tif"],
            # Categorical -> dictionary-encoded strings in Parquet; must be rewritten too.
            "s3url": pd.Categorical(
                [
                    PGC_STAC_PLACEHOLDER + "collections/c/items/58_05_10m_v4.1",
                    PGC_STAC_PLACEHOLDER + "collections/c/items/58_06_10m_v4.1",
                ]
            ),
        },
        geometry=[box(-100000, 97440, -97440, 100000), box(-97440, 97440, -94880, 100000)],
        crs="EPSG:3413",
    )
    index.to_parquet(layout.pgc_index / "ArcticDEM_Mosaic_Index_v4_1_10m.parquet")
    (layout.pgc_index / "README.txt").write_text("sandbox index\n")
    return layout


@pytest.fixture(autouse=True)
def _aws_stays_local(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No credential lookup may leave loopback: no instance metadata, no user files."""
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    # Should GDAL ever look for instance credentials, it finds a closed loopback port.
    monkeypatch.setenv("CPL_AWS_EC2_API_ROOT_URL", "http://127.0.0.1:9")


@pytest.fixture(scope="module")
def s3(world: WorldLayout) -> Iterator[tuple[ServerThread, FaultInjector, S3StandIn]]:
    app = s3_app(world, ACCESS_KEY, SECRET_KEY)
    injector = FaultInjector(app, "s3")
    with ServerThread(injector) as server:
        yield server, injector, app
    app.close()


def _client(url: str, secret: str = SECRET_KEY, key: str = ACCESS_KEY, **config: Any) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"total_max_attempts": 1}, **config),
    )


# -- S3 stand-in -------------------------------------------------------------------


def test_s3_get_head_list_and_ranges_with_boto3(s3: Any) -> None:
    server, _, app = s3
    assert app.object_count == 6 and app.byte_count > len(BLOB)
    c = _client(server.url)

    assert c.get_object(Bucket="eodata", Key="a/b/hello.txt")["Body"].read() == b"hello\n"
    head = c.head_object(Bucket="eodata", Key="a/blob.bin")
    assert head["ContentLength"] == len(BLOB) and head["ETag"].startswith('"')

    part = c.get_object(Bucket="eodata", Key="a/blob.bin", Range="bytes=1000-1999")
    assert part["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert part["ContentRange"] == f"bytes 1000-1999/{len(BLOB)}"
    assert part["Body"].read() == BLOB[1000:2000]
    tail = c.get_object(Bucket="eodata", Key="a/blob.bin", Range="bytes=-10")
    assert tail["Body"].read() == BLOB[-10:]
    with pytest.raises(ClientError) as info:
        c.get_object(Bucket="eodata", Key="a/blob.bin", Range=f"bytes={len(BLOB)}-")
    assert info.value.response["Error"]["Code"] == "InvalidRange"
    with pytest.raises(ClientError) as info:
        c.get_object(Bucket="eodata", Key="a/missing")
    assert info.value.response["Error"]["Code"] == "NoSuchKey"

    listed = c.list_objects_v2(Bucket="eodata", Prefix="a/")
    assert [o["Key"] for o in listed["Contents"]] == ["a/b/hello.txt", "a/blob.bin"]
    folders = c.list_objects_v2(Bucket="eodata", Delimiter="/")
    assert {p["Prefix"] for p in folders["CommonPrefixes"]} == {"Sentinel-2/", "a/", "b/"}
    pages = c.get_paginator("list_objects_v2").paginate(
        Bucket="eodata", PaginationConfig={"PageSize": 2}
    )
    keys = [o["Key"] for page in pages for o in page["Contents"]]
    assert len(keys) == 6 and BAND_KEY in keys


def test_s3_refuses_missing_and_wrong_credentials(s3: Any) -> None:
    server, injector, _ = s3

    def error_code(client: Any) -> str:
        with pytest.raises(ClientError) as info:
            client.get_object(Bucket="eodata", Key="a/b/hello.txt")
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
        return str(info.value.response["Error"]["Code"])

    unsigned = _client(server.url, signature_version=botocore.UNSIGNED)
    assert error_code(unsigned) == "AccessDenied"
    assert error_code(_client(server.url, secret="wrong")) == "SignatureDoesNotMatch"
    assert error_code(_client(server.url, key="AKIAOTHERKEY")) == "InvalidAccessKeyId"
    with pytest.raises(ClientError):
        _client(server.url, secret="wrong").list_objects_v2(Bucket="eodata")
    with pytest.raises(ClientError) as info:
        _client(server.url, secret="wrong").head_object(Bucket="eodata", Key="a/blob.bin")
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403

    plain = requests.get(f"{server.url}/eodata/a/b/hello.txt", timeout=5)
    assert plain.status_code == 403 and "<Code>AccessDenied</Code>" in plain.text
    # Read-only like eodata: correctly signed writes are refused too.
    with pytest.raises(ClientError) as info:
        _client(server.url).put_object(Bucket="eodata", Key="a/new.txt", Body=b"x")
    assert info.value.response["Error"]["Code"] == "AccessDenied"
    assert all(r["status"] == 403 for r in injector.requests()[-7:])


def test_s3_presigned_urls(s3: Any) -> None:
    server, _, _ = s3
    c = _client(server.url, signature_version="s3v4")
    url = c.generate_presigned_url(
        "get_object", Params={"Bucket": "eodata", "Key": "a/b/hello.txt"}, ExpiresIn=60
    )
    assert requests.get(url, timeout=5).content == b"hello\n"
    assert requests.get(url.replace("a/b/hello", "a/b/hellO"), timeout=5).status_code == 403


def _signed_environ(path: str, secret: str = SECRET_KEY) -> dict[str, Any]:
    """A WSGI environ for a GET signed now by botocore's own signer."""
    request = AWSRequest(method="GET", url=f"http://127.0.0.1:9000{path}")
    request.headers["x-amz-content-sha256"] = "UNSIGNED-PAYLOAD"
    S3SigV4Auth(Credentials(ACCESS_KEY, secret), "s3", "eu-central-1").add_auth(request)
    raw_path, _, query = path.partition("?")
    from urllib.parse import unquote

    environ = {
        "REQUEST_METHOD": "GET",
        "RAW_URI": path,
        "PATH_INFO": unquote(raw_path).encode().decode("latin-1"),
        "QUERY_STRING": query,
        "HTTP_HOST": "127.0.0.1:9000",  # botocore signs the URL's host without setting it
    }
    for name, value in request.headers.items():
        environ["HTTP_" + name.upper().replace("-", "_")] = value
    return environ


class _TwentyMinutesLater(dt.datetime):
    @classmethod
    def now(cls, tz: dt.tzinfo | None = None) -> dt.datetime:  # type: ignore[override]
        return dt.datetime.now(tz) + dt.timedelta(minutes=20)


def test_sigv4_verifier_against_botocore_signer() -> None:
    verifier = SigV4Verifier(ACCESS_KEY, SECRET_KEY)
    odd = "/eodata/odd%20dir/x%2By%3Dz/%C3%BC~%281%29.txt?list-type=2&prefix=a%2Fb"
    assert verifier.verify(_signed_environ(odd)) is None
    failure = verifier.verify(_signed_environ(odd, secret="nope"))
    assert failure is not None and failure.code == "SignatureDoesNotMatch"
    later = SigV4Verifier(ACCESS_KEY, SECRET_KEY, clock=_TwentyMinutesLater)
    stale = later.verify(_signed_environ("/eodata/a"))
    assert stale is not None and stale.code == "RequestTimeTooSkewed"
    tampered = _signed_environ("/eodata/a")
    tampered["HTTP_HOST"] = "127.0.0.1:9001"
    assert verifier.verify(tampered) is not None


def test_s3_direct_reads_answer_like_moto(world: WorldLayout, s3: Any) -> None:
    """The fast path for plain GET/HEAD must give the same answers as moto itself."""
    from moto.s3.models import s3_backends

    server, _, app = s3
    moto_only = s3_app(world, ACCESS_KEY, SECRET_KEY, direct_reads=False)
    # Two stand-ins serve "eodata" side by side, and neither claims the global bucket
    # name, which other moto users in the process (e.g. tests) may want to create.
    assert moto_only.account_id != app.account_id
    owner = s3_backends.bucket_accounts.get("eodata", ("", ""))[1]
    assert owner not in (app.account_id, moto_only.account_id)
    try:
        with ServerThread(moto_only) as reference:
            fast, slow = _client(server.url), _client(reference.url)
            for request in (
                {"Key": "a/blob.bin"},
                {"Key": "a/blob.bin", "Range": "bytes=5-99"},
                {"Key": "a/blob.bin", "Range": "bytes=100000-"},
                {"Key": "a/blob.bin", "Range": "bytes=-7"},
                {"Key": "a/blob.bin", "Range": "bytes=102000-999999"},
            ):
                a = fast.get_object(Bucket="eodata", **request)
                b = slow.get_object(Bucket="eodata", **request)
                assert a["Body"].read() == b["Body"].read(), request
                for field in ("ContentLength", "ContentRange", "ETag", "LastModified"):
                    assert a.get(field) == b.get(field), (request, field)
                assert a["ContentType"] == b["ContentType"]
            a = fast.head_object(Bucket="eodata", Key=BAND_KEY)
            b = slow.head_object(Bucket="eodata", Key=BAND_KEY)
            assert (a["ContentLength"], a["ETag"]) == (b["ContentLength"], b["ETag"])
    finally:
        moto_only.close()


def test_s3_writable_mode_keeps_the_world_untouched(world: WorldLayout) -> None:
    app = s3_app(world, ACCESS_KEY, SECRET_KEY, read_only=False)
    try:
        with ServerThread(app) as server:
            c = _client(server.url)
            c.put_object(Bucket="eodata", Key="a/b/hello.txt", Body=b"changed")
            assert c.get_object(Bucket="eodata", Key="a/b/hello.txt")["Body"].read() == b"changed"
            part = c.get_object(Bucket="eodata", Key="a/b/hello.txt", Range="bytes=0-1")
            assert part["Body"].read() == b"ch"
    finally:
        app.close()
    assert world.s3_object("eodata", "a/b/hello.txt").read_bytes() == b"hello\n"


def test_s3_with_obstore(s3: Any) -> None:
    obstore = pytest.importorskip("obstore")
    from obstore.store import S3Store

    server, _, _ = s3

    def store(secret: str) -> Any:
        return S3Store(
            "eodata",
            endpoint=server.url,
            access_key_id=ACCESS_KEY,
            secret_access_key=secret,
            region="us-east-1",
            virtual_hosted_style_request=False,
            client_options={"allow_http": True},
        )

    good = store(SECRET_KEY)
    assert bytes(obstore.get(good, "a/b/hello.txt").bytes()) == b"hello\n"
    assert bytes(obstore.get_range(good, "a/blob.bin", start=10, end=20)) == BLOB[10:20]
    assert obstore.head(good, "a/blob.bin")["size"] == len(BLOB)
    listed = [o["path"] for batch in obstore.list(good, prefix="a") for o in batch]
    assert sorted(listed) == ["a/b/hello.txt", "a/blob.bin"]
    with pytest.raises(Exception, match="403"):
        obstore.get(store("wrong"), "a/b/hello.txt").bytes()


@contextmanager
def _gdal_s3(port: int, secret: str | None) -> Iterator[None]:
    """GDAL configured like a user of CDSE: endpoint + keys in the environment."""
    settings = {
        "AWS_S3_ENDPOINT": f"127.0.0.1:{port}",
        "AWS_HTTPS": "NO",
        "AWS_VIRTUAL_HOSTING": "FALSE",
        "AWS_REGION": "us-east-1",
    }
    if secret is None:
        settings["AWS_NO_SIGN_REQUEST"] = "YES"
    else:
        settings["AWS_ACCESS_KEY_ID"] = ACCESS_KEY
        settings["AWS_SECRET_ACCESS_KEY"] = secret
    saved = {name: os.environ.get(name) for name in settings}
    os.environ.update(settings)
    try:
        with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"):
            yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def test_rasterio_reads_jp2_through_vsis3_only_with_keys(s3: Any) -> None:
    server, injector, _ = s3
    with _gdal_s3(server.port, SECRET_KEY):
        with rasterio.open(f"/vsis3/eodata/{BAND_KEY}") as ds:
            assert ds.driver == "JP2OpenJPEG" and ds.crs.to_epsg() == 32655
            np.testing.assert_array_equal(ds.read(1), _band())
        with rasterio.open(f"s3://eodata/{BAND_KEY}") as ds:
            assert ds.shape == (64, 64)

    injector.clear_requests()
    for other, secret in (("B03", "wrong"), ("B04", None)):
        with (
            _gdal_s3(server.port, secret),
            pytest.raises(rasterio.errors.RasterioIOError, match=r"signature|Access Denied"),
        ):
            rasterio.open(f"/vsis3/eodata/{BAND_KEY.replace('B02', other)}")
    statuses = {r["status"] for r in injector.requests()}
    assert statuses == {403}


# -- range-capable static server ---------------------------------------------------


def test_parse_range() -> None:
    assert parse_range(None, 100) is None
    assert parse_range("bytes=0-9", 100) == [(0, 9)]
    assert parse_range("bytes=90-", 100) == [(90, 99)]
    assert parse_range("bytes=-10", 100) == [(90, 99)]
    assert parse_range("bytes=-500", 100) == [(0, 99)]
    assert parse_range("bytes=50-500", 100) == [(50, 99)]
    assert parse_range("bytes=0-1, 5-6", 100) == [(0, 1), (5, 6)]
    assert parse_range("bytes=100-", 100) == []
    assert parse_range("bytes=-0", 100) == []
    assert parse_range("bytes=5-1", 100) is None  # invalid: ignored
    assert parse_range("items=0-1", 100) is None
    assert parse_range("bytes=x-1", 100) is None


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerThread, Path]]:
    root = tmp_path_factory.mktemp("static")
    (root / "blob.bin").write_bytes(BLOB)
    (root / "sub").mkdir()
    (root / "sub" / "empty").write_bytes(b"")
    (root.parent / "secret.txt").write_text("outside")
    with ServerThread(range_file_app(root)) as server:
        yield server, root


def test_range_server_answers(files: tuple[ServerThread, Path]) -> None:
    server, _ = files
    url = f"{server.url}/blob.bin"
    whole = requests.get(url, timeout=5)
    assert whole.status_code == 200 and whole.content == BLOB
    assert whole.headers["Accept-Ranges"] == "bytes"
    etag, modified = whole.headers["ETag"], whole.headers["Last-Modified"]

    def get(range_header: str, **headers: str) -> requests.Response:
        return requests.get(url, headers={"Range": range_header, **headers}, timeout=5)

    r = get("bytes=10-19")
    assert r.status_code == 206 and r.content == BLOB[10:20]
    assert r.headers["Content-Range"] == f"bytes 10-19/{len(BLOB)}"
    r = get("bytes=102390-")
    assert r.status_code == 206 and r.content == BLOB[102390:]
    r = get("bytes=-5")
    assert r.status_code == 206 and r.content == BLOB[-5:]
    assert r.headers["Content-Range"] == f"bytes {len(BLOB) - 5}-{len(BLOB) - 1}/{len(BLOB)}"
    r = get(f"bytes={len(BLOB)}-")
    assert r.status_code == 416 and r.headers["Content-Range"] == f"bytes */{len(BLOB)}"
    assert get("bytes=-0").status_code == 416
    assert get("bytes=9-3").status_code == 200  # invalid header: ignored
    r = get("bytes=0-1,4-5")
    assert r.status_code == 206
    assert r.headers["Content-Type"].startswith("multipart/byteranges; boundary=")
    assert BLOB[0:2] in r.content and BLOB[4:6] in r.content
    assert get("bytes=0-3", **{"If-Range": '"stale"'}).status_code == 200
    assert get("bytes=0-3", **{"If-Range": etag}).status_code == 206

    head = requests.head(url, timeout=5)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Content-Length"] == str(len(BLOB))
    assert requests.get(url, headers={"If-None-Match": etag}, timeout=5).status_code == 304
    assert requests.get(url, headers={"If-Modified-Since": modified}, timeout=5).status_code == 304
    assert requests.post(url, timeout=5).status_code == 405
    empty = requests.get(f"{server.url}/sub/empty", timeout=5)
    assert empty.status_code == 200 and empty.content == b""
    assert requests.get(f"{server.url}/sub/empty", headers={"Range": "bytes=0-"}).status_code == 416
    for missing in ("/nope", "/sub", "/sub/", "/"):
        assert requests.get(server.url + missing, timeout=5).status_code == 404


def test_range_server_refuses_path_traversal(files: tuple[ServerThread, Path]) -> None:
    server, _ = files
    # A raw request line: HTTP clients would normalise the dots away.
    for path in ("/../secret.txt", "/sub/../../secret.txt", "/%2e%2e/secret.txt", "//etc/passwd"):
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            status_line = sock.recv(4096).split(b"\r\n", 1)[0]
        assert b" 404 " in status_line or b" 400 " in status_line, (path, status_line)


def test_rasterio_reads_cog_over_http(world: WorldLayout) -> None:
    injector = FaultInjector(range_file_app(world.pgc_data), "pgc-data")
    with (
        ServerThread(injector) as server,
        rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"),
        rasterio.open(f"/vsicurl/{server.url}/{COG_PATH}") as ds,
    ):
        assert ds.crs.to_epsg() == 3413 and ds.block_shapes == [(128, 128)]
        window = rasterio.windows.Window(128, 128, 64, 64)
        np.testing.assert_array_equal(ds.read(1, window=window), _dem()[128:192, 128:192])
    ranged = [r for r in injector.requests() if r["method"] == "GET"]
    assert ranged and all(r["status"] == 206 and r["range"] for r in ranged)


# -- PGC data server ---------------------------------------------------------------


def test_pgc_index_zip_has_rewritten_urls(world: WorldLayout) -> None:
    import geopandas as gpd

    stac = "http://127.0.0.1:1/api/v1"
    with ServerThread(pgc_data_app(world, lambda: stac)) as server:
        url = server.url + ARCTICDEM_INDEX_PATH
        first = requests.get(url, timeout=10)
        assert first.status_code == 200
        assert first.headers["Content-Type"] == "application/zip"
        second = requests.get(url, timeout=10)
        assert second.content == first.content  # deterministic, built once
        assert second.headers["ETag"] == first.headers["ETag"]
        tail = requests.get(url, headers={"Range": "bytes=-22"}, timeout=5)
        assert tail.status_code == 206 and tail.content == first.content[-22:]

        archive = zipfile.ZipFile(io.BytesIO(first.content))
        assert sorted(archive.namelist()) == [
            "ArcticDEM_Mosaic_Index_v4_1_10m.parquet",
            "README.txt",
        ]
        assert all(info.date_time == (1980, 1, 1, 0, 0, 0) for info in archive.infolist())
        raw = archive.read("ArcticDEM_Mosaic_Index_v4_1_10m.parquet")
        assert PGC_DATA_PLACEHOLDER.encode() not in raw
        assert PGC_STAC_PLACEHOLDER.encode() not in raw
        assert b"geo" in pq.read_schema(io.BytesIO(raw)).metadata  # GeoParquet kept
        index = gpd.read_parquet(io.BytesIO(raw))
        assert index.crs.to_epsg() == 3413
        assert index["fileurl"][0] == f"{server.url}/{COG_PATH}"
        assert index["s3url"][1] == f"{stac}/collections/c/items/58_06_10m_v4.1"

        # The rewritten URL really serves the COG.
        cog = requests.get(index["fileurl"][0], headers={"Range": "bytes=0-3"}, timeout=5)
        assert cog.status_code == 206 and cog.content in (b"II*\x00", b"MM\x00*")
        assert requests.get(server.url + "/arcticdem/none.tif", timeout=5).status_code == 404


# -- fault injection ---------------------------------------------------------------


@pytest.fixture
def faulty(files: tuple[ServerThread, Path]) -> Iterator[tuple[str, FaultInjector]]:
    _, root = files
    injector = FaultInjector(range_file_app(root), "files", seed=7)
    with ServerThread(injector) as server:
        yield server.url, injector


def test_faults_are_off_by_default(faulty: tuple[str, FaultInjector]) -> None:
    url, injector = faulty
    assert injector.config == FaultConfig()
    for _ in range(20):
        assert requests.get(f"{url}/blob.bin", timeout=5).content == BLOB
    log = injector.requests()
    assert len(log) == 20
    assert all(r["fault"] is None and r["status"] == 200 for r in log)
    assert all(r["bytes_sent"] == len(BLOB) for r in log)


def test_error_fault_with_retry_after(faulty: tuple[str, FaultInjector]) -> None:
    url, injector = faulty
    injector.set_config(error_rate=1.0, error_statuses=(429,), retry_after_s=1.5)
    r = requests.get(f"{url}/blob.bin", timeout=5)
    assert r.status_code == 429 and r.headers["Retry-After"] == "2"
    assert r.json()["code"] == "TooManyRequests"
    injector.set_config(error_rate=1.0, error_statuses=(500,), retry_after_s=1)
    r = requests.get(f"{url}/blob.bin", timeout=5)
    assert r.status_code == 500 and "Retry-After" not in r.headers
    assert [e["fault"] for e in injector.requests()] == ["error", "error"]


def test_injected_s3_errors_are_s3_documents(s3: Any) -> None:
    server, injector, _ = s3
    with (
        injector.faults(error_rate=1.0, error_statuses=(503,), retry_after_s=3),
        pytest.raises(ClientError) as info,
    ):
        _client(server.url).get_object(Bucket="eodata", Key="a/b/hello.txt")
    assert info.value.response["Error"]["Code"] == "SlowDown"
    assert info.value.response["ResponseMetadata"]["HTTPHeaders"]["retry-after"] == "3"
    assert injector.config == FaultConfig()


def test_reset_fault_resets_the_connection(faulty: tuple[str, FaultInjector]) -> None:
    url, injector = faulty
    injector.set_config(reset_rate=1.0)
    with pytest.raises(requests.exceptions.ConnectionError) as info:
        requests.get(f"{url}/blob.bin", timeout=5)
    assert "reset" in str(info.value).lower() or "aborted" in str(info.value).lower()
    port = int(url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /blob.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        with pytest.raises(ConnectionResetError):
            sock.recv(1024)
    log = injector.requests()
    assert [e["fault"] for e in log] == ["reset", "reset"]
    assert all(e["bytes_sent"] == 0 and e["status"] is None for e in log)


def test_truncate_fault_cuts_the_body(faulty: tuple[str, FaultInjector]) -> None:
    url, injector = faulty
    injector.set_config(truncate_rate=1.0)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.get(f"{url}/blob.bin", timeout=5)
    # On the wire: the full Content-Length is announced, then the connection ends early.
    with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=5) as sock:
        sock.sendall(b"GET /blob.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    head, _, received = answer.partition(b"\r\n\r\n")
    assert f"Content-Length: {len(BLOB)}".encode() in head
    entry = injector.requests()[-1]
    assert entry["fault"] == "truncate" and entry["content_length"] == len(BLOB)
    assert entry["bytes_sent"] == len(received) < len(BLOB)
    assert received == BLOB[: len(received)]


def test_latency_is_added(faulty: tuple[str, FaultInjector]) -> None:
    url, injector = faulty
    injector.set_config(latency_ms=150)
    started = time.perf_counter()
    assert requests.get(f"{url}/blob.bin", headers={"Range": "bytes=0-0"}, timeout=5).ok
    assert time.perf_counter() - started >= 0.15
    assert injector.requests()[-1]["duration_s"] >= 0.15


def test_faults_only_hit_matching_paths(faulty: tuple[str, FaultInjector]) -> None:
    url, injector = faulty
    injector.set_config(error_rate=1.0, error_statuses=(503,), match=r"\.bin$")
    assert requests.get(f"{url}/blob.bin", timeout=5).status_code == 503
    assert requests.get(f"{url}/sub/empty", timeout=5).status_code == 200


def test_fault_sequence_is_reproducible(faulty: tuple[str, FaultInjector]) -> None:
    url, injector = faulty

    def statuses() -> list[int]:
        injector.set_config(error_rate=0.5, error_statuses=(503,))
        return [
            requests.get(f"{url}/blob.bin", headers={"Range": "bytes=0-0"}, timeout=5).status_code
            for _ in range(16)
        ]

    first = statuses()
    assert first == statuses()  # set_config re-seeds
    assert set(first) == {206, 503}


def test_a_short_run_sees_the_configured_rate(files: tuple[ServerThread, Path]) -> None:
    """20 % over 40 requests is 8 faults, one in every 5 consecutive requests, and the
    kinds in their proportions (10 % : 5 % : 5 %) — not "20 % on average"."""
    _, root = files
    config = FaultConfig(error_rate=0.1, reset_rate=0.05, truncate_rate=0.05)
    sequences = []
    for name in ("pgc-data", "s3"):  # same base seed, different servers
        injector = FaultInjector(range_file_app(root), name, config, seed=0)
        with ServerThread(injector) as server, requests.Session() as session:
            for _ in range(40):
                try:
                    session.get(f"{server.url}/blob.bin", timeout=5)
                except requests.exceptions.RequestException:
                    session.close()  # a reset or truncated connection: start afresh
        faults = [entry["fault"] for entry in injector.requests()]
        assert len(faults) == 40
        for start in range(0, 40, 5):
            assert sum(f is not None for f in faults[start : start + 5]) == 1, faults
        assert sorted(f for f in faults if f) == ["error"] * 4 + ["reset"] * 2 + ["truncate"] * 2
        sequences.append(faults)
    assert sequences[0] != sequences[1]  # each server draws its own schedule


def test_fault_schedule_rates_are_exact_over_every_deck() -> None:
    for rates, deck in (
        ({"error": 0.2}, 5),
        ({"error": 0.1, "reset": 0.05, "truncate": 0.05}, 5),
        ({"error": 0.5}, 2),
        ({"error": 1 / 3}, 3),
        ({"error": 1.0}, 1),
    ):
        schedule = FaultSchedule(rates, seed="0:test")
        assert schedule.size == deck
        dealt = [schedule.next() for _ in range(deck * 20)]
        total = sum(rates.values())
        for start in range(0, len(dealt), deck):
            assert sum(f is not None for f in dealt[start : start + deck]) == round(total * deck)
        for kind, rate in rates.items():
            assert dealt.count(kind) == pytest.approx(rate * len(dealt), abs=1)
    # A rate no small deck holds exactly is still exact in the long run.
    schedule = FaultSchedule({"error": 0.123}, seed=1)
    assert sum(schedule.next() is not None for _ in range(1000)) == 123
    assert FaultSchedule({}, seed=0).next() is None


def test_admin_endpoints(faulty: tuple[str, FaultInjector]) -> None:
    url, injector = faulty
    admin = f"{url}/_sandbox"
    assert requests.get(f"{admin}/faults", timeout=5).json() == FaultConfig().to_json()

    new = {"error_rate": 1.0, "error_statuses": [503], "retry_after_s": 5}
    r = requests.put(f"{admin}/faults", data=json.dumps(new), timeout=5)
    assert r.status_code == 200 and r.json()["error_statuses"] == [503]
    assert injector.config.error_rate == 1.0
    assert requests.get(f"{url}/blob.bin", timeout=5).status_code == 503
    # Admin endpoints are never faulted (error_rate is 1 right now) nor logged.
    assert requests.get(f"{admin}/faults", timeout=5).status_code == 200
    for bad in ({"error_rate": 2}, {"nonsense": 1}, [1]):
        assert requests.put(f"{admin}/faults", json=bad, timeout=5).status_code == 400
    assert requests.put(f"{admin}/faults", data=b"{", timeout=5).status_code == 400
    assert requests.put(f"{admin}/faults", json={}, timeout=5).json() == FaultConfig().to_json()

    requests.get(f"{url}/blob.bin?x=1", headers={"Range": "bytes=5-9"}, timeout=5)
    log = requests.get(f"{admin}/requests", timeout=5).json()
    assert [(e["method"], e["path"], e["status"]) for e in log] == [
        ("GET", "/blob.bin", 503),
        ("GET", "/blob.bin", 206),
    ]
    assert log[1]["query"] == "x=1" and log[1]["range"] == "bytes=5-9"
    assert log[1]["bytes_sent"] == 5 and log[1]["fault"] is None
    assert requests.delete(f"{admin}/requests", timeout=5).status_code == 204
    assert requests.get(f"{admin}/requests", timeout=5).json() == []
    assert injector.requests() == []
    assert requests.post(f"{admin}/faults", timeout=5).status_code == 405
    assert requests.get(f"{admin}/nothing", timeout=5).status_code == 404


def test_fault_config_validation() -> None:
    with pytest.raises(ValueError):
        FaultConfig(error_rate=0.7, reset_rate=0.7)
    with pytest.raises(ValueError):
        FaultConfig(error_statuses=(200,))
    with pytest.raises(ValueError):
        FaultConfig(match="(")
    assert FaultConfig.from_json(FaultConfig(latency_ms=3).to_json()) == FaultConfig(latency_ms=3)


# -- server thread -----------------------------------------------------------------


def test_server_thread_lifecycle() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    server = ServerThread(app)
    with pytest.raises(RuntimeError):
        _ = server.url
    with server:
        port = server.port
        assert server.url == f"http://127.0.0.1:{server.port}" and server.running
        assert requests.get(server.url, timeout=5).content == b"ok"
        with pytest.raises(OSError):  # a taken port is an error, not sys.exit()
            ServerThread(app, port=server.port).start()
    assert not server.running
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(f"http://127.0.0.1:{port}/", timeout=2)
