"""fastconv.onnx.Backend: the onnx.backend API, for onnx's backend test suite."""
from onnx.backend.base import Backend as _Backend
from onnx.backend.base import BackendRep as _BackendRep
from onnx.backend.base import Device, DeviceType, namedtupledict

from ._session import InferenceSession


class BackendRep(_BackendRep):
    """A prepared model: ``run(inputs)`` with the inputs in graph order
    (a list, one array, or a dict by name)."""

    def __init__(self, session):
        self.session = session
        self._names = [i.name for i in session.get_inputs()]
        self._out_names = [o.name for o in session.get_outputs()]

    def run(self, inputs, **kwargs):
        if isinstance(inputs, dict):
            feed = dict(inputs)
        else:
            if not isinstance(inputs, (list, tuple)):
                inputs = [inputs]
            if len(inputs) != len(self._names):
                raise ValueError(f"run: the model takes {len(self._names)} input(s) "
                                 f"{self._names}, got {len(inputs)}")
            feed = dict(zip(self._names, inputs))
        outs = self.session.run(None, feed)
        return namedtupledict("Outputs", self._out_names)(*outs)


class Backend(_Backend):
    """onnx.backend.base.Backend running models with fastconv (CPU only)."""

    @classmethod
    def supports_device(cls, device):
        return Device(device).type == DeviceType.CPU

    @classmethod
    def prepare(cls, model, device="CPU", **kwargs):
        if not cls.supports_device(device):
            raise ValueError(f"fastconv.onnx.Backend runs on the CPU, not {device!r}")
        return BackendRep(InferenceSession(model))

    @classmethod
    def run_model(cls, model, inputs, device="CPU", **kwargs):
        return cls.prepare(model, device, **kwargs).run(inputs)
