"""In-process decoding with transformers, constrained to a JSON schema by xgrammar.

The decoding loop is written out rather than delegated to `model.generate()` because the
planner's latency on a 2-core CPU depends on three things `generate()` does not do:

1. Prefix caching. The planner's system prompt (~1-2k tokens) is the same on every call;
   prefilling it costs tens of seconds on these CPUs. The KV cache of the previous call is
   kept and cropped to the longest common token prefix, so only the new tail is prefilled.
2. Jump-forward. Where the grammar forces the next characters (`"dataset":"` after `"da`,
   the closing `"}]}`), those tokens are appended without a decoding step and prefilled
   together with the next step.
3. A narrow output layer. The vocabulary is 150k tokens; when the grammar allows only a
   few hundred, only their rows of the output matrix are multiplied.

Decoding is greedy. A checkpoint is any local directory transformers reads (GLM-4's
`Glm4ForCausalLM`/`GlmForCausalLM`, Qwen2, Llama...), a `.gguf` file (dequantised once
into the cache, see `agent.llm.gguf`) or a hub id when the machine is online. The embedded
planner does not come here: it runs its GGUF on llama.cpp (`agent.llm.llamacpp`).
"""

from __future__ import annotations

import inspect
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from agent.llm import gguf
from agent.llm.base import Completion, LLMBackend, Message
from agent.llm.grammar import GrammarCompiler, JsonConstraint
from core.errors import SetupError, UserInputError

log = logging.getLogger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# Above this many allowed tokens the full output layer is cheaper than gathering rows.
NARROW_HEAD_MAX_TOKENS = 16384
QUANTIZE_MODES = (None, "int8")
# Chat-end markers of common chat templates; those in the vocabulary stop decoding.
STOP_TOKEN_NAMES = ("<|im_end|>", "<|endoftext|>", "<|user|>", "<|observation|>", "<|eot_id|>")


@dataclass
class _PrefixCache:
    """The KV cache of the last call and the token ids it holds."""

    cache: Any = None
    token_ids: list[int] = field(default_factory=list)

    def reuse(self, prompt_ids: list[int]) -> int:
        """Crop the cache to the common prefix with `prompt_ids`; return its length.

        At least one prompt token is always left to prefill, because its logits are the
        first step's.
        """
        if self.cache is None:
            return 0
        limit = min(len(self.token_ids), len(prompt_ids) - 1)
        common = 0
        while common < limit and self.token_ids[common] == prompt_ids[common]:
            common += 1
        if common == 0:
            self.cache, self.token_ids = None, []
            return 0
        surplus = self.cache.get_seq_length() - common
        if surplus > 0:
            self.cache.crop(-surplus)  # negative: "remove this many" in transformers 4 and 5
        del self.token_ids[common:]
        return common


class TransformersBackend(LLMBackend):
    """A causal LM running in this process.

    Args:
        model: a checkpoint directory, a `.gguf` file, or a Hugging Face hub id.
        dtype: "float32" (default: the fastest measured here, and exact for a dequantised
            GGUF), "bfloat16" or "float16".
        threads: torch intra-op threads; None leaves torch's setting alone.
        prefix_cache: reuse the KV cache of the common prompt prefix between calls.
        jump_forward: append grammar-forced tokens without a decoding step.
        quantize: "int8" quantises the decoder's linear layers to int8 (dynamic, per
            channel) after loading: measured 3x faster per decoding step and 4x faster
            prefill on these CPUs. None keeps the checkpoint's weights. The output layer is
            never quantised (it is sliced to the allowed tokens instead).
        trust_remote_code: let transformers run the checkpoint's own modelling code.
    """

    name = "transformers"

    def __init__(
        self,
        model: str | Path,
        *,
        dtype: str = "float32",
        threads: int | None = None,
        prefix_cache: bool = True,
        jump_forward: bool = True,
        quantize: str | None = None,
        trust_remote_code: bool = False,
    ) -> None:
        if dtype not in DTYPES:
            raise UserInputError(f"Unknown dtype {dtype!r}; choose from: {', '.join(DTYPES)}.")
        quantize = None if quantize in ("none", "") else quantize
        if quantize not in QUANTIZE_MODES:
            raise UserInputError(f"Unknown quantize mode {quantize!r}; choose from: int8, none.")
        if threads is not None:
            torch.set_num_threads(int(threads))
        started = time.perf_counter()
        self.model_dir = resolve_checkpoint(model)
        self._model, self.tokenizer = _load(self.model_dir, DTYPES[dtype], trust_remote_code)
        if quantize == "int8":
            _quantize_decoder_int8(self._model)
        self.model = str(model)
        self.load_seconds = time.perf_counter() - started
        self.prefix_cache_enabled = prefix_cache
        self.jump_forward = jump_forward
        self._prefix = _PrefixCache()
        self.last_reused_tokens = 0  # prompt tokens the last call took from the KV cache
        self.stop_token_ids = _stop_token_ids(self._model, self.tokenizer)
        vocab_size = self._model.get_output_embeddings().weight.shape[0]
        self._grammars = GrammarCompiler(self.tokenizer, vocab_size, self.stop_token_ids)
        # transformers 5 renamed `past_key_values` to `cache`; accept both generations.
        forward = inspect.signature(self._model.get_decoder().forward).parameters
        self._cache_kw = "cache" if "cache" in forward else "past_key_values"

    def complete(
        self,
        messages: list[Message],
        json_schema: dict[str, Any] | None = None,
        max_tokens: int = 256,
    ) -> Completion:
        started = time.perf_counter()
        prompt_ids = self.encode_chat(messages)
        constraint = self._grammars.constraint(json_schema) if json_schema else None
        with torch.inference_mode():
            output_ids, finish = self._decode(prompt_ids, constraint, max_tokens)
        # Stop tokens never reach `output_ids`; keeping the rest verbatim keeps the text
        # identical to what the grammar accepted.
        text = self.tokenizer.decode(output_ids, skip_special_tokens=False)
        return Completion(
            text=text,
            prompt_tokens=len(prompt_ids),
            completion_tokens=len(output_ids),
            seconds=time.perf_counter() - started,
            backend=self.name,
            model=self.model,
            finish_reason=finish,
        )

    def warm_up(self, messages: list[Message]) -> None:
        """Prefill the KV cache with `messages` (no answer), for the prefix cache to reuse."""
        if not self.prefix_cache_enabled or not messages:
            return
        ids = self.encode_chat(messages, add_generation_prompt=False)
        prefix = self._prefix
        try:
            reused = prefix.reuse(ids + [-1])  # a placeholder: reuse() always leaves one back
            if prefix.cache is None:
                from transformers import DynamicCache

                prefix.cache = DynamicCache(config=self._model.config)
            pending = ids[reused:]
            if pending:
                with torch.inference_mode():
                    self._model.get_decoder()(
                        input_ids=torch.tensor([pending]),
                        use_cache=True,
                        **{self._cache_kw: prefix.cache},
                    )
                prefix.token_ids.extend(pending)
        except BaseException:
            self._prefix = _PrefixCache()
            raise

    def encode_chat(self, messages: list[Message], add_generation_prompt: bool = True) -> list[int]:
        """Token ids of `messages` under the tokenizer's chat template, ready to answer."""
        if not getattr(self.tokenizer, "chat_template", None):
            raise SetupError(
                f"The tokenizer of {self.model_dir} has no chat template; use an instruct/chat "
                "checkpoint (its tokenizer_config.json or chat_template.jinja defines one)."
            )
        text = self.tokenizer.apply_chat_template(
            list(messages), add_generation_prompt=add_generation_prompt, tokenize=False
        )
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def close(self) -> None:
        self._prefix = _PrefixCache()
        self._model = None

    def _decode(
        self, prompt_ids: list[int], constraint: JsonConstraint | None, max_tokens: int
    ) -> tuple[list[int], str]:
        """Greedy decoding; returns the new token ids and "stop" or "length"."""
        if not self.prefix_cache_enabled:
            self._prefix = _PrefixCache()
        prefix = self._prefix
        try:
            return self._decode_with(prefix, prompt_ids, constraint, max_tokens)
        except BaseException:
            self._prefix = _PrefixCache()  # a half-updated cache must not be reused
            raise

    def _decode_with(
        self,
        prefix: _PrefixCache,
        prompt_ids: list[int],
        constraint: JsonConstraint | None,
        max_tokens: int,
    ) -> tuple[list[int], str]:
        reused = prefix.reuse(prompt_ids)
        self.last_reused_tokens = reused
        if prefix.cache is None:
            from transformers import DynamicCache

            prefix.cache = DynamicCache(config=self._model.config)
        pending = prompt_ids[reused:]  # not yet in the KV cache
        output: list[int] = []
        while len(output) < max_tokens:
            if constraint is not None and self.jump_forward:
                forced = constraint.forced_tokens()[: max_tokens - len(output)]
                for token in forced:
                    constraint.accept(token)
                output.extend(forced)
                pending.extend(forced)
                if len(output) >= max_tokens:
                    break
            allowed = constraint.allowed_tokens() if constraint is not None else None
            if allowed is not None and len(allowed) == 1 and int(allowed[0]) in self.stop_token_ids:
                return output, "stop"  # the JSON is complete: no need to ask the model
            token = self._next_token(pending, prefix.cache, allowed)
            prefix.token_ids.extend(pending)
            if token in self.stop_token_ids:
                return output, "stop"
            if constraint is not None:
                constraint.accept(token)
            output.append(token)
            pending = [token]
        return output, "length"

    def _next_token(self, pending: list[int], cache: Any, allowed: torch.Tensor | None) -> int:
        """Feed `pending` into the cache and pick the next token (greedy, within `allowed`)."""
        ids = torch.tensor([pending], dtype=torch.long)  # [1, n_pending]
        hidden = self._model.get_decoder()(input_ids=ids, use_cache=True, **{self._cache_kw: cache})
        last = hidden.last_hidden_state[0, -1]  # [hidden]
        head = self._model.get_output_embeddings()
        if allowed is not None and len(allowed) <= NARROW_HEAD_MAX_TOKENS:
            rows = head.weight.index_select(0, allowed)  # [n_allowed, hidden]
            logits = rows @ last.to(rows.dtype)
            if head.bias is not None:
                logits = logits + head.bias.index_select(0, allowed)
            return int(allowed[int(logits.argmax())])
        logits = head(last.unsqueeze(0))[0].float()  # [vocab]
        if allowed is not None:
            masked = torch.full_like(logits, float("-inf"))
            masked[allowed] = logits[allowed]
            logits = masked
        return int(logits.argmax())


def resolve_checkpoint(model: str | Path) -> Path | str:
    """A directory transformers can load: local as is, GGUF converted once, or a hub id."""
    path = Path(model).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        directory = gguf.converted_dir_for(path)
        return gguf.convert_gguf(path, directory)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise UserInputError(
                f"{path} is not a model checkpoint (no config.json); pass a directory saved with "
                "save_pretrained, a .gguf file, or a Hugging Face hub id."
            )
        return path
    if path.exists() or str(model).startswith((".", "/", "~")) or str(model).count("/") != 1:
        raise UserInputError(
            f"Model {str(model)!r} is neither a checkpoint directory, a .gguf file, nor a "
            "Hugging Face hub id (owner/name)."
        )
    return str(model)


def _load(source: Path | str, dtype: torch.dtype, trust_remote_code: bool):
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    # A weight-loading bar on every start clutters `autoglm run` and chat output.
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(
            source, dtype=dtype, trust_remote_code=trust_remote_code
        )
    except OSError as error:
        if isinstance(source, Path):
            raise SetupError(f"Cannot load the checkpoint in {source}: {error}") from error
        raise SetupError(
            f"Cannot load {source!r} from the Hugging Face hub ({error}). Offline, download it "
            f"elsewhere with `huggingface-cli download {source} --local-dir DIR` and pass DIR."
        ) from error
    except ValueError as error:  # unknown architecture, remote code refused
        raise SetupError(f"transformers cannot build the model in {source}: {error}") from error
    except (SafetensorError, RuntimeError) as error:  # truncated or overwritten weights
        raise SetupError(
            f"The weights in {source} are damaged ({error}). Restore or delete that directory "
            "(a converted GGUF is converted again on the next start)."
        ) from error
    model.eval()
    return model, tokenizer


def _quantize_decoder_int8(model) -> None:
    """Swap the decoder's `nn.Linear` layers for dynamic int8 ones, in place.

    Decoding one token at batch size 1 reads every weight once, so it is bound by memory
    bandwidth: int8 weights are a quarter of float32. Per-channel scales keep the error
    well below the Q4_K quantisation the embedded model already carries.
    """
    import warnings

    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    with warnings.catch_warnings():  # torch.ao's eager quantisation warns it moved to torchao
        warnings.simplefilter("ignore")
        quantize_dynamic(
            model.get_decoder(), {torch.nn.Linear: per_channel_dynamic_qconfig}, inplace=True
        )


def _stop_token_ids(model, tokenizer) -> list[int]:
    ids: set[int] = set()
    configured = getattr(model.generation_config, "eos_token_id", None)
    if isinstance(configured, int):
        ids.add(configured)
    elif configured:
        ids.update(configured)
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    vocab = tokenizer.get_vocab()
    ids.update(vocab[name] for name in STOP_TOKEN_NAMES if name in vocab)
    return sorted(ids)
