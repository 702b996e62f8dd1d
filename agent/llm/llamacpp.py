"""In-process decoding on llama.cpp (llama-cpp-python): the embedded planner's runtime.

What one plan costs here is what every command costs, so this backend does four things:

1. It memory-maps the verified GGUF (no dequantised copy, ~0.3 s to load).
2. It decodes greedily under the JSON schema's grammar (`agent.llm.gbnf`), asking the
   grammar about the model's best tokens first and the whole vocabulary only when none of
   them fits, so a constrained step costs what a free one does.
3. Jump-forward: bytes the grammar forces (`"dataset":"` after a choice, `"}]}` at the end)
   are appended without asking the model and fed to it with the next choice in one batch;
   the opening every answer shares (`{"actions":[{"action` and, where the request allows
   one action only, its name and next key) is fed with the prompt, in its batch
   (forced punctuation is left to the model unless `leave_quotes=False`: then a schema that
   admits one document is written without evaluating the model at all).
4. The leading system message's KV state is prefilled once, saved in the cache
   (`agent.llm.prompt_state`: raw bytes, a JSON header, a sha256) and restored by every new
   process in milliseconds; within a process the KV cache of the previous call is reused up
   to the common token prefix.

The chat template is the GGUF's own (`tokenizer.chat_template`), rendered with Jinja2 as
transformers renders it. llama.cpp's own logging (C-level, model loading included) goes to a
callback that keeps the last lines, never to stderr; they are quoted when a load fails.
The model loads on a background thread (llama.cpp releases the GIL): a command imports the
planner, or torch, while the vocabulary and weights load, and every method waits for it.

Build: llama-cpp-python compiles llama.cpp at `pip install`. The default `-march=native`
build enables AMX on Sapphire Rapids-class CPUs, where llama.cpp's AMX matrix multiply
segfaults on Q4_K models (ggml-org/llama.cpp#20824); the README's install command builds
`PORTABLE_CMAKE_ARGS` instead (AVX2/FMA/F16C: every x86-64 CPU since 2013). A library that
does carry AMX is loaded without extra buffer types, which routes around that code path.
"""

from __future__ import annotations

import collections
import ctypes
import hashlib
import os
import platform
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from agent.llm.base import Completion, LLMBackend, Message
from agent.llm.gbnf import GrammarState, schema_grammar
from agent.llm.prepare import Progress, exclusive
from agent.llm.prompt_state import StateError, StateKey, read_state, write_state
from core.cache import cache_dir
from core.errors import SetupError

LLAMA_CPP_VERSION = "0.3.36"  # pinned: this module calls its low-level API
# One build for every x86-64 CPU with AVX2 (Intel since 2013, AMD since 2015); no multimodal
# library (LLAVA_BUILD=OFF), which the planner never loads. The README and .ci/run use it.
PORTABLE_CMAKE_ARGS = (
    "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DLLAVA_BUILD=OFF"
)
INSTALL_HINT = (
    f'CMAKE_ARGS="{PORTABLE_CMAKE_ARGS}" pip install --force-reinstall --no-cache-dir '
    f"llama-cpp-python=={LLAMA_CPP_VERSION}"
)
# The planner's prompt is ~1000 tokens, a re-ask adds its answer and the validator's
# message; 4096 leaves room for both at 12 KB of KV cache per token (48 MB).
DEFAULT_N_CTX = 4096
N_BATCH = 512  # tokens per llama_decode call
PREFILL_CHUNK = 64  # tokens per call while the first-run bar is up, so the bar moves
TOP_K_FIRST = 64  # greedy: the grammar checks the 64 best tokens before the whole vocabulary
MAX_PIECE_BYTES = 256
BYTE_SCAN_FIRST = 2048  # ids searched for the 256 single-byte tokens before the rest
STATE_MIN_TOKENS = 64  # a shorter system prompt is cheaper to prefill than to save
PREFILL_TOKENS_PER_S = 100.0  # one thread on these CPUs (measured 60-130): for the estimate
KV_TYPES = "f16/f16"  # llama.cpp's default KV cache types, part of a saved state's key
STOP_TOKEN_NAMES = ("<|im_end|>", "<|endoftext|>", "<|user|>", "<|observation|>", "<|eot_id|>")

_LOG_LINES: collections.deque[str] = collections.deque(maxlen=40)
_LOG_CALLBACK: Any = None  # kept referenced: llama.cpp calls it for the life of the process


def _llama():
    """llama_cpp with its logging routed into `_LOG_LINES` (nothing printed)."""
    global _LOG_CALLBACK
    try:
        import llama_cpp
    except ImportError:
        raise SetupError(
            "The embedded planner runs on llama.cpp, which is not installed. Install it "
            f"with: {INSTALL_HINT}  (it compiles llama.cpp: a few minutes)."
        ) from None
    if _LOG_CALLBACK is None:

        @llama_cpp.llama_log_callback
        def keep(level: int, text: bytes, user_data: Any) -> None:
            _LOG_LINES.append(text.decode("utf-8", errors="replace"))

        _LOG_CALLBACK = keep
        llama_cpp.llama_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))
    return llama_cpp


def library_features(llama_cpp: Any) -> set[str]:
    """The CPU features this llama.cpp build was compiled with ("AVX2", "AMX_INT8", ...)."""
    info = llama_cpp.llama_print_system_info().decode(errors="replace")
    return {
        name.strip()
        for name, _, value in (part.partition("=") for part in info.replace("CPU :", "").split("|"))
        if value.strip() == "1"
    }


def cpu_flags() -> set[str] | None:
    """This CPU's feature flags (Linux), or None where they cannot be read."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.partition(":")[2].split())
    return None


def check_build(features: set[str], flags: set[str] | None) -> None:
    """Refuse a build that needs instructions this CPU lacks (it would die on SIGILL).

    Raises:
        SetupError: with the command that builds a library for this CPU.
    """
    if flags is None or platform.machine().lower() not in ("x86_64", "amd64"):
        return
    needed = {"AVX2": "avx2", "FMA": "fma", "F16C": "f16c", "AVX512": "avx512f"}
    missing = [name for name, flag in needed.items() if name in features and flag not in flags]
    if missing:
        raise SetupError(
            f"This llama-cpp-python was compiled for {', '.join(missing)}, which this CPU "
            'lacks. Rebuild it for this CPU with: CMAKE_ARGS="-DGGML_NATIVE=ON" pip install '
            f"--force-reinstall --no-cache-dir llama-cpp-python=={LLAMA_CPP_VERSION}"
        )


def use_extra_buffers(features: set[str]) -> bool:
    """Whether to let llama.cpp repack weights into extra buffer types (AMX, CPU_REPACK).

    Not with an AMX build: its repacked matrix multiply is where Q4_K models segfault
    (ggml-org/llama.cpp#20824); without extra buffers the plain CPU kernels run instead.
    """
    return not any(name.startswith("AMX") for name in features)


MAX_THREADS = 4  # a 0.5B model's step gains little beyond this many cores


def default_threads() -> int:
    """llama.cpp threads for this process: the cores no other process is running on now.

    llama.cpp's threads spin while they wait for each other, so a thread on a core another
    process holds slows every step (measured here: 2 threads on 2 cores shared with a test
    run were slower than one); on idle cores each one cuts prefill nearly in proportion (2
    threads on 2 idle cores: `autoglm plan` 3.8 s -> 2.5 s). "Now" is the kernel's count of
    runnable tasks (/proc/loadavg, this one included), not the load average, which still
    counts the user's previous command for a minute after it ended.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        running = int(Path("/proc/loadavg").read_text().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return 1
    others = max(0, running - 1)
    return max(1, min(MAX_THREADS, cores - others))


def _model_identity(path: Path) -> str:
    """A stand-in hash for a GGUF whose sha256 nobody gave: its path, size and mtime."""
    stat = path.stat()
    identity = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
    return hashlib.sha256(identity.encode()).hexdigest()


class LlamaCppBackend(LLMBackend):
    """A GGUF model running in this process on llama.cpp.

    Args:
        model_path: the .gguf file (memory-mapped, never copied).
        model_sha256: its verified hash, the key of saved prompt states (None: derived
            from path, size and mtime).
        threads: llama.cpp threads (default `default_threads()`: the cores idle now).
        n_ctx: context size in tokens.
        jump_forward: append grammar-forced bytes without a decoding step.
        leave_quotes: even then, leave forced quote characters to the model (see
            `GrammarState.forced_bytes`); the planner's per-request schemas need it.
        save_state: save the leading system message's KV state in the cache for later
            processes, and restore it from there.
        state_dir: where saved states live (default `<cache>/prompt-states`).
    """

    name = "llama.cpp"

    def __init__(
        self,
        model_path: str | Path,
        *,
        model_sha256: str | None = None,
        threads: int | None = None,
        n_ctx: int = DEFAULT_N_CTX,
        jump_forward: bool = True,
        leave_quotes: bool = True,
        save_state: bool = True,
        state_dir: Path | None = None,
    ) -> None:
        started = time.perf_counter()
        self._lib = llama = _llama()
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise SetupError(f"The GGUF model {self.model_path} does not exist.")
        features = library_features(llama)
        check_build(features, cpu_flags())
        self.model = self.model_path.stem
        self.model_sha256 = model_sha256 or _model_identity(self.model_path)
        self.n_ctx, self.jump_forward, self.save_state = n_ctx, jump_forward, save_state
        self.leave_quotes = leave_quotes
        self.state_dir = state_dir or cache_dir() / "prompt-states"
        self.threads = int(threads or default_threads())
        self._model = self._ctx = self._batch = None
        self._grammars: dict[str, str] = {}
        self._kv: list[int] = []  # the token ids held in the KV cache, sequence 0
        self.last_reused_tokens = 0  # prompt tokens the last call took from the KV cache
        self.last_state = "none"  # how the system prompt got into the cache: restored/built
        self.load_seconds = 0.0  # set when the background load is done
        self._load_error: BaseException | None = None
        self._loader: threading.Thread | None = threading.Thread(
            target=self._load_in_background, args=(features, started), daemon=True
        )
        self._loader.start()

    def _load_in_background(self, features: set[str], started: float) -> None:
        try:
            self._load(features)
            self._vocab = self._lib.llama_model_get_vocab(self._model)
            self.n_vocab = self._lib.llama_vocab_n_tokens(self._vocab)
            self._template = self._chat_template()
            self._bos_text, self._eos_text = (
                self._piece(token).decode(errors="ignore")
                for token in (
                    self._lib.llama_vocab_bos(self._vocab),
                    self._lib.llama_vocab_eos(self._vocab),
                )
            )
            self.stop_token_ids = self._stop_tokens()
            self._byte_tokens = self._find_byte_tokens()
            self._all_tokens = np.arange(self.n_vocab, dtype=np.int32)  # [n_vocab]
        except BaseException as error:  # noqa: BLE001 - re-raised in the caller's thread
            self._load_error = error
        self.load_seconds = time.perf_counter() - started

    def wait_loaded(self) -> None:
        """Block until the model is loaded; raise what the load raised.

        Raises:
            SetupError: llama.cpp could not load the model.
        """
        loader = self._loader
        if loader is not None:
            loader.join()
            self._loader = None
        if self._load_error is not None:
            raise self._load_error

    # ------------------------------------------------------------------ loading

    def _load(self, features: set[str]) -> None:
        llama = self._lib
        params = llama.llama_model_default_params()
        params.load_mode = llama.LLAMA_LOAD_MODE_MMAP
        params.use_extra_bufts = use_extra_buffers(features)
        _LOG_LINES.clear()
        self._model = llama.llama_model_load_from_file(str(self.model_path).encode(), params)
        if self._model:
            context = llama.llama_context_default_params()
            context.n_ctx = self.n_ctx
            context.n_batch = context.n_ubatch = N_BATCH
            context.n_threads = context.n_threads_batch = self.threads
            context.no_perf = True
            self._ctx = llama.llama_init_from_model(self._model, context)
        if not self._model or not self._ctx:
            what = "".join(_LOG_LINES).strip() or "no reason given"
            self._free()
            raise SetupError(
                f"llama.cpp cannot load {self.model_path}: {what[-600:]}. If the file is "
                "damaged, delete it and it will be rebuilt."
            )
        self._batch = llama.llama_batch_init(N_BATCH, 0, 1)
        self._memory = llama.llama_get_memory(self._ctx)

    def _meta(self, key: str) -> str | None:
        size = self._lib.llama_model_meta_val_str(self._model, key.encode(), None, 0)
        if size < 0:
            return None
        buffer = ctypes.create_string_buffer(size + 1)
        self._lib.llama_model_meta_val_str(self._model, key.encode(), buffer, size + 1)
        return buffer.value.decode("utf-8", errors="replace")

    def _chat_template(self):
        from jinja2.exceptions import TemplateError
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        source = self._meta("tokenizer.chat_template")
        if not source:
            raise SetupError(
                f"The GGUF {self.model_path} has no chat template (tokenizer.chat_template); "
                "use an instruct/chat model."
            )

        def raise_exception(message: str) -> None:
            raise TemplateError(message)

        environment = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        environment.globals["raise_exception"] = raise_exception
        return environment.from_string(source)

    def _stop_tokens(self) -> list[int]:
        llama, ids = self._lib, set()
        for token in (llama.llama_vocab_eos(self._vocab), llama.llama_vocab_eot(self._vocab)):
            if token >= 0:
                ids.add(int(token))
        for name in STOP_TOKEN_NAMES:
            found = self._tokenize(name.encode(), special=True)
            if len(found) == 1 and llama.llama_vocab_is_eog(self._vocab, found[0]):
                ids.add(found[0])
        return sorted(ids)

    def _find_byte_tokens(self) -> dict[int, int]:
        """`{byte: token}` for single-byte tokens; empty unless all 256 exist (jump-forward
        must be able to offer the grammar every possible next byte)."""
        found: dict[int, int] = {}
        # Byte-level BPE and SentencePiece byte fallback both keep their byte tokens among
        # the first ids; the whole vocabulary is scanned only when they are not there.
        for stop in (min(self.n_vocab, BYTE_SCAN_FIRST), self.n_vocab):
            for token in range(stop):
                piece = self._piece(token)
                if len(piece) == 1 and piece[0] not in found:
                    found[piece[0]] = token
            if len(found) == 256:
                return found
        return {}

    # ------------------------------------------------------------------ tokens

    def tokenize(self, text: bytes, special: bool = False) -> list[int]:
        """Token ids of `text` (no BOS added; `special`: parse `<|im_end|>` and the like)."""
        self.wait_loaded()
        return self._tokenize(text, special)

    def piece(self, token: int) -> bytes:
        """The bytes of one token (special tokens spelled out)."""
        self.wait_loaded()
        return self._piece(token)

    def _tokenize(self, text: bytes, special: bool = False) -> list[int]:
        capacity = len(text) + 8
        buffer = (self._lib.llama_token * capacity)()
        count = self._lib.llama_tokenize(
            self._vocab, text, len(text), buffer, capacity, False, special
        )
        if count < 0:
            raise SetupError(f"llama.cpp could not tokenize {len(text)} bytes")
        return list(buffer[:count])

    def _piece(self, token: int) -> bytes:
        buffer = ctypes.create_string_buffer(MAX_PIECE_BYTES)
        size = self._lib.llama_token_to_piece(
            self._vocab, int(token), buffer, MAX_PIECE_BYTES, 0, True
        )
        return buffer.raw[: max(0, size)]

    def encode_chat(self, messages: list[Message], add_generation_prompt: bool = True) -> list[int]:
        """Token ids of `messages` under the model's chat template."""
        from jinja2.exceptions import TemplateError

        self.wait_loaded()

        try:
            text = self._template.render(
                messages=list(messages),
                add_generation_prompt=add_generation_prompt,
                bos_token=self._piece(self._lib.llama_vocab_bos(self._vocab)).decode(
                    errors="ignore"
                ),
                eos_token=self._piece(self._lib.llama_vocab_eos(self._vocab)).decode(
                    errors="ignore"
                ),
                tools=None,
            )
        except TemplateError as error:
            raise SetupError(f"The chat template of {self.model_path} failed: {error}") from None
        return self._tokenize(text.encode(), special=True)

    # ------------------------------------------------------------------ the KV cache

    def _forget_from(self, position: int) -> None:
        self._lib.llama_memory_seq_rm(self._memory, 0, position, -1)
        del self._kv[position:]

    def _eval(self, tokens: list[int], progress: Progress | None = None) -> None:
        """Feed `tokens` after what the cache holds; the last one's logits come out."""
        if len(self._kv) + len(tokens) > self.n_ctx:
            raise SetupError(
                f"The prompt and answer need {len(self._kv) + len(tokens)} tokens; the "
                f"context holds {self.n_ctx} (n_ctx)."
            )
        step = PREFILL_CHUNK if progress else N_BATCH
        batch = self._batch
        for start in range(0, len(tokens), step):
            chunk = tokens[start : start + step]
            last = start + len(chunk) == len(tokens)
            base = len(self._kv)
            for i, token in enumerate(chunk):
                batch.token[i] = token
                batch.pos[i] = base + i
                batch.n_seq_id[i] = 1
                batch.seq_id[i][0] = 0
                batch.logits[i] = last and i == len(chunk) - 1
            batch.n_tokens = len(chunk)
            code = self._lib.llama_decode(self._ctx, batch)
            if code != 0:
                self._forget_from(base)
                raise SetupError(f"llama.cpp failed to decode ({code}).")
            self._kv.extend(chunk)
            if progress:
                progress.update(len(chunk))

    def _logits(self) -> np.ndarray:
        pointer = self._lib.llama_get_logits_ith(self._ctx, -1)
        return np.ctypeslib.as_array(pointer, shape=(self.n_vocab,))  # [n_vocab], no copy

    # ------------------------------------------------------------------ saved prompt state

    def _state_key(self, ids: list[int]) -> StateKey:
        library = getattr(self._lib, "__version__", "unknown")  # the installed one, not the pin
        return StateKey(self.model_sha256, tuple(ids), self.n_ctx, library, KV_TYPES)

    def _restore(self, key: StateKey) -> bool:
        """Load the saved state of `key` into the cache; False when there is none usable."""
        path = key.path(self.state_dir)
        try:
            payload, _ = read_state(path, key)
        except FileNotFoundError:
            return False
        except (StateError, OSError) as error:
            print(
                f"the saved planner prompt state {path} is damaged ({error}); rebuilding it",
                file=sys.stderr,
                flush=True,
            )
            path.unlink(missing_ok=True)
            return False
        self._forget_from(0)
        buffer = (ctypes.c_uint8 * len(payload)).from_buffer(bytearray(payload))
        if self._lib.llama_state_seq_set_data(self._ctx, buffer, len(payload), 0) != len(payload):
            self._forget_from(0)
            print(f"llama.cpp rejected the saved state {path}; rebuilding it", file=sys.stderr)
            path.unlink(missing_ok=True)
            return False
        self._kv = list(key.token_ids)
        return True

    def _build_state(self, key: StateKey) -> None:
        ids = list(key.token_ids)
        self._forget_from(0)
        started = time.perf_counter()
        what = f"prefilling its {len(ids)}-token system prompt (saved for later starts)"
        with Progress(what, len(ids), len(ids) / PREFILL_TOKENS_PER_S / self.threads) as bar:
            self._eval(ids, progress=bar)
        size = self._lib.llama_state_seq_get_size(self._ctx, 0)
        buffer = (ctypes.c_uint8 * size)()
        written = self._lib.llama_state_seq_get_data(self._ctx, buffer, size, 0)
        write_state(key.path(self.state_dir), key, bytes(buffer[:written]),
                    time.perf_counter() - started)  # fmt: skip

    def _prefix(self, ids: list[int]) -> None:
        """Make the cache hold `ids` first: kept, restored from the saved state, or built."""
        if self._kv[: len(ids)] == ids:
            return
        if not self.save_state or len(ids) < STATE_MIN_TOKENS:
            return  # complete() prefills what is missing
        key = self._state_key(ids)
        if self._restore(key):
            self.last_state = "restored"
            return
        with exclusive(key.path(self.state_dir).with_suffix(".lock"), "preparing the planner"):
            if self._restore(key):  # another process built it while we waited
                self.last_state = "restored"
                return
            self._build_state(key)
            self.last_state = "built"

    def warm_up(self, messages: list[Message]) -> None:
        """Put `messages` (the planner's system prompt) in the KV cache: from the saved state
        when there is one, else prefilled once and saved for later processes."""
        self.wait_loaded()
        if messages:
            self._prefix(self.encode_chat(messages, add_generation_prompt=False))

    # ------------------------------------------------------------------ decoding

    def complete(
        self,
        messages: list[Message],
        json_schema: dict[str, Any] | None = None,
        max_tokens: int = 256,
    ) -> Completion:
        started = time.perf_counter()
        self.wait_loaded()
        prompt_ids = self.encode_chat(messages)
        keep = 0
        if messages and messages[0]["role"] == "system":
            system = self.encode_chat(messages[:1], add_generation_prompt=False)
            if prompt_ids[: len(system)] == system:
                self._prefix(system)
                keep = len(system)
        # Only the system prompt is reused: what follows is evaluated afresh on every call,
        # so an answer never depends on the request before it (batch splits differ).
        self._forget_from(min(keep, len(self._kv))) if keep else None
        grammar = self._grammar(json_schema) if json_schema else None
        try:
            text, count, finish = self._decode(prompt_ids, grammar, max_tokens)
        finally:
            if grammar is not None:
                grammar.close()
        return Completion(
            text=text.decode("utf-8", errors="replace"),
            prompt_tokens=len(prompt_ids),
            completion_tokens=count,
            seconds=time.perf_counter() - started,
            backend=self.name,
            model=self.model,
            finish_reason=finish,
        )

    def _grammar(self, json_schema: dict[str, Any]) -> GrammarState:
        import json

        key = json.dumps(json_schema, sort_keys=True)
        if key not in self._grammars:
            self._grammars[key] = schema_grammar(json_schema)
        return GrammarState(
            self._vocab, self._grammars[key], self._byte_tokens, self.stop_token_ids
        )

    def _decode(
        self, prompt_ids: list[int], grammar: GrammarState | None, max_tokens: int
    ) -> tuple[bytes, int, str]:
        """Greedy decoding; returns (the answer's bytes, its token count, "stop"/"length")."""
        reused = 0
        limit = min(len(self._kv), len(prompt_ids) - 1)  # the last prompt token gives logits
        while reused < limit and self._kv[reused] == prompt_ids[reused]:
            reused += 1
        self._forget_from(reused)
        self.last_reused_tokens = reused
        pending = prompt_ids[reused:]  # not yet in the KV cache
        output, count = bytearray(), 0
        if grammar is not None and self.jump_forward:
            # The opening every answer shares (`{"actions":[{"action`) goes into the prompt's
            # batch, tokenized as text is: prefill costs ~15 ms a token here, a step of
            # decoding ~40-80 ms, and the opening took 5 steps. What the grammar forces is
            # read on a copy first, so that its closing punctuation can be left to the model
            # (see `forced_bytes`) unless the document is complete.
            probe = grammar.clone()
            opening, complete = probe.forced_bytes(limit=4 * max_tokens, leave_quotes=False)
            probe.close()
            if not complete:
                opening = opening.rstrip(b'"{}[],: ')
            opening, _ = grammar.forced_bytes(limit=len(opening), leave_quotes=False)
            if opening:
                tokens = self._forced_tokens(opening)[:max_tokens]
                output += b"".join(self._piece(t) for t in tokens)
                count += len(tokens)
                pending += tokens
            if complete:
                return bytes(output), count, "stop"
        while count < max_tokens:
            if grammar is not None and self.jump_forward:
                forced, complete = grammar.forced_bytes(
                    limit=4 * (max_tokens - count), leave_quotes=self.leave_quotes
                )
                if forced:
                    tokens = self._forced_tokens(forced)[: max_tokens - count]
                    output += b"".join(self._piece(t) for t in tokens)
                    count += len(tokens)
                    pending += tokens
                if complete:
                    return bytes(output), count, "stop"
                if count >= max_tokens:
                    break
            self._eval(pending)
            token = self._choose(grammar)
            if token in self.stop_token_ids:
                return bytes(output), count, "stop"
            if grammar is not None:
                grammar.accept(token)
            output += self._piece(token)
            count += 1
            pending = [token]
        return bytes(output), count, "length"

    def _forced_tokens(self, forced: bytes) -> list[int]:
        """Tokens that spell `forced` exactly: its own tokenization when that round-trips,
        else one single-byte token per byte."""
        tokens = self._tokenize(forced)
        if b"".join(self._piece(t) for t in tokens) == forced:
            return tokens
        return [self._byte_tokens[b] for b in forced]

    def _choose(self, grammar: GrammarState | None) -> int:
        """The model's best next token that the grammar allows."""
        logits = self._logits()
        if grammar is None:
            return int(np.argmax(logits))
        top = np.argpartition(logits, -TOP_K_FIRST)[-TOP_K_FIRST:]  # [k], unordered
        top = top[np.argsort(-logits[top], kind="stable")].astype(np.int32)
        allowed = grammar.allowed(top)  # same order: the first is the best allowed
        if len(allowed):
            return int(allowed[0])
        allowed = grammar.allowed(self._all_tokens)
        if not len(allowed):
            raise SetupError("The grammar allows no token; the JSON schema is unsatisfiable.")
        return int(allowed[int(np.argmax(logits[allowed]))])

    def close(self) -> None:
        if getattr(self, "_loader", None) is not None:
            self._loader.join()
            self._loader = None
        self._free()

    def _free(self) -> None:
        llama = getattr(self, "_lib", None)
        if llama is None:
            return
        if getattr(self, "_batch", None) is not None:
            llama.llama_batch_free(self._batch)
            self._batch = None
        if getattr(self, "_ctx", None):
            llama.llama_free(self._ctx)
            self._ctx = None
        if getattr(self, "_model", None):
            llama.llama_model_free(self._model)
            self._model = None
        self._kv = []

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown may have unloaded ctypes
            pass
