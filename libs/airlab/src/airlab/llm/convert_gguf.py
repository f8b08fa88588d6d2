"""Convert a GGUF model to a Hugging Face safetensors folder (for vLLM, which does not serve this GGUF).
Run with the vLLM venv's python: `python convert_gguf.py MODEL.gguf OUT_DIR` (needs transformers, gguf,
accelerate and torch, which that venv has)."""

import sys
from pathlib import Path


def convert(source: Path, target: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype="bfloat16")
    # The weights were dequantized on load; drop the GGUF marks so they save as plain safetensors.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        delattr(model.config, "quantization_config")
    model.is_quantized = False
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target, safe_serialization=True)
    tokenizer.save_pretrained(target)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: convert_gguf.py MODEL.gguf OUT_DIR")
    convert(Path(sys.argv[1]), Path(sys.argv[2]))
