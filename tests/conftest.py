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


@pytest.fixture(scope="session")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A DARTS-layout checkpoint of `TINY_MODEL` taking all 13 features."""
    import segmentation_models_pytorch as smp
    import torch

    from darts.processing.features import ALL_FEATURES
    from darts.processing.models import save_darts_checkpoint

    config = {**TINY_MODEL, "in_channels": len(ALL_FEATURES)}
    settings = dict(config)
    torch.manual_seed(0)
    module = smp.create_model(
        arch=settings.pop("arch"),
        encoder_name=settings.pop("encoder_name"),
        encoder_weights=None,
        **settings,
    )
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_darts_checkpoint(
        module, {"model": config, "bands": list(ALL_FEATURES), "name": "tiny"}, path
    )
    return path
