from pathlib import Path

import pytest

pytest_plugins = ["darts.net.testing", "darts.sandbox.testing"]

# A small real smp model over every input band (untrained: the chain is under test,
# not skill).
TINY_MODEL = {
    "arch": "unet",
    "encoder_name": "tu-test_resnet",
    "encoder_depth": 3,
    "decoder_channels": [16, 8, 4],
    "classes": 1,
}


def _tiny_model(path: Path, seed: int) -> Path:
    """A DARTS-layout checkpoint of `TINY_MODEL` taking all 13 features, its weights
    drawn with ``seed``."""
    import segmentation_models_pytorch as smp
    import torch

    from darts.processing.features import ALL_FEATURES
    from darts.processing.models import save_darts_checkpoint

    config = {**TINY_MODEL, "in_channels": len(ALL_FEATURES)}
    settings = dict(config)
    torch.manual_seed(seed)
    module = smp.create_model(
        arch=settings.pop("arch"),
        encoder_name=settings.pop("encoder_name"),
        encoder_weights=None,
        **settings,
    )
    save_darts_checkpoint(
        module, {"model": config, "bands": list(ALL_FEATURES), "name": "tiny"}, path
    )
    return path


@pytest.fixture(scope="session")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DARTS-layout checkpoint of `TINY_MODEL` taking all 13 features."""
    return _tiny_model(tmp_path_factory.mktemp("model") / "tiny.pt", seed=0)


@pytest.fixture(scope="session")
def other_model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same architecture as `model_file` with other weights (another checksum)."""
    return _tiny_model(tmp_path_factory.mktemp("model") / "other.pt", seed=1)
