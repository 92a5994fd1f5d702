"""Build loaded TensorFlow models by one prediction instead of a training step.

Loading a trained model, Rasa 3.6 builds each TensorFlow model (DIET, the response selector, TED)
by running one training step on one example, which traces the whole training graph: 40-80 s of a
start-up. This patch builds them with the one prediction Rasa runs anyway after loading, and
restores the trained weights as the variables are created (TensorFlow's deferred restoration); it
then checks that every variable was restored. Predictions are identical. Fine-tuning loads keep
Rasa's way. The project's current model has no TensorFlow component, so the patch is idle there;
it keeps a configuration that adds one (DIET, TED) from paying the traced training step.
"""

from __future__ import annotations

from typing import Any

from bot.rasa_patches import RASA_VERSION, Patch

TARGET = "rasa.utils.tensorflow.models:RasaModel.load"


def apply(patch: Patch) -> None:
    from rasa.utils.tensorflow.models import RasaModel

    stock = patch.stock(TARGET).__func__

    def load(cls: Any, model_file_name: str, model_data_example: Any, predict_data_example: Any = None,
             finetune_mode: bool = False, *args: Any, **kwargs: Any) -> Any:
        if finetune_mode or predict_data_example is None:
            return stock(cls, model_file_name, model_data_example, predict_data_example, finetune_mode, *args, **kwargs)
        model = cls(*args, **kwargs)
        status = model.load_weights(model_file_name)
        model.run_inference(predict_data_example)  # creates the variables; the checkpoint fills them
        status.assert_existing_objects_matched()
        status.expect_partial()  # the optimizer's state is in the checkpoint but not needed to predict
        return model

    patch.replace(RasaModel, "load", classmethod(load))


PATCH = Patch(
    name="model_load",
    rasa_version=RASA_VERSION,
    targets={TARGET: "84fd81c0fdd01a8048de2d9b5b3022bdbf1e155f7b4d67737eb51ecb0787d292"},
    apply=apply,
    saves="40-80 s of start-up per TensorFlow component (none in the current model)",
)
