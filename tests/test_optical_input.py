"""`load_optical`: reflectance and quality mask from the store, offline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from darts.net import NetworkSettings, S3Client, S3Settings, forbid_sockets
from darts.pipelines.optical import QUALITY_BAND, load_optical
from darts.pipelines.staged_scenes import StagedScenes
from darts.sandbox.layout import WorldLayout
from darts.sandbox.service import Sandbox
from darts.sources.cdse_source import CdseSource
from darts.store.scenes import SceneStore


def test_reflectance_and_quality_from_the_store_offline(
    sandbox: Sandbox, sandbox_world: WorldLayout, tmp_path: Path
) -> None:
    manifest = json.loads(sandbox_world.manifest.read_text())
    scene = manifest["scenes"][0]
    item_path = sandbox_world.cdse_items / "sentinel-2-l2a" / f"{scene['id']}.json"
    item = json.loads(item_path.read_text())
    store = SceneStore(tmp_path / "store")
    s3 = S3Client(
        S3Settings(
            endpoint_url=sandbox.endpoints.cdse_s3_endpoint,
            access_key_id=sandbox.credentials.access_key_id,
            secret_access_key=sandbox.credentials.secret_access_key,
        ),
        NetworkSettings(max_retries=1, backoff_base_s=0.01),
    )
    online = load_optical(CdseSource(s3=s3), item, ["B04", "B08"], store)
    with forbid_sockets() as audit:
        offline = load_optical(StagedScenes(CdseSource(), store), item, ["B04", "B08"], store)
    assert audit.blocked == []
    assert sorted(offline.data_vars) == sorted(["B04_10m", "B08_10m", "SCL_20m", QUALITY_BAND])
    for name in offline.data_vars:
        np.testing.assert_array_equal(online[name].values, offline[name].values)
    red = offline["B04_10m"]
    assert red.dtype == np.float32
    dn = store.open(scene["id"], ["B04_10m"], load=True)["B04_10m"].values
    valid = dn > 0
    np.testing.assert_allclose(red.values[valid], dn[valid] * 1e-4 - 0.1, rtol=0, atol=1e-6)
    assert np.isnan(red.values[~valid]).all()
    quality = offline[QUALITY_BAND].values
    scl = offline["SCL_20m"].values
    assert (quality[np.isin(scl, [0, 1])] == 0).all()
    assert (quality[np.isin(scl, [4, 5, 6])] == 2).all()
    assert (quality[np.isin(scl, [3, 8, 9, 11])] == 1).all()
