"""llama.cpp's JSON-schema grammar against xgrammar, on the same model and the planner's schemas.

    python bench/grammar_choice.py

Both decode greedily with the embedded model on llama.cpp, from the same restored system
prompt, with jump-forward over forced text; they differ only in who constrains the tokens:
`agent.llm.gbnf` (llama.cpp's grammar sampler, the runtime's choice) or xgrammar as a logits
processor (a token bitmask from a `GrammarMatcher` compiled with `any_whitespace=False`).
Per schema: CPU seconds for the completion, whether the answer validates, the answer. Then
what each costs once per process: importing it, and building xgrammar's tokenizer info
from the model's 151k-token vocabulary. Numbers come from this run.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import jsonschema
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

TASKS = [
    "Train a GCN on Cora for 100 epochs",
    "compare GAT and GraphSAGE on CiteSeer with 5 seeds",
    "which model did best?",
    "在 MUTAG 上训练 GIN",
    "train something",
    "the number",
]


def xgrammar_decode(backend, xgr, info, messages, schema, max_tokens: int = 200):
    """The runtime's loop with xgrammar in place of llama.cpp's grammar."""
    compiler = xgr.GrammarCompiler(info, max_threads=1)
    compiled = compiler.compile_json_schema(
        json.dumps(schema), any_whitespace=False, strict_mode=True
    )
    matcher = xgr.GrammarMatcher(compiled)
    bitmask = xgr.allocate_token_bitmask(1, backend.n_vocab)
    prompt = backend.encode_chat(messages)
    system = backend.encode_chat(messages[:1], add_generation_prompt=False)
    backend._prefix(system)
    reused = len(system) if backend._kv[: len(system)] == system else 0
    backend._forget_from(reused)
    pending, output = prompt[reused:], b""
    for _ in range(max_tokens):
        forced = matcher.find_jump_forward_string().encode()
        if forced:
            tokens = backend._forced_tokens(forced)
            for token in tokens:
                matcher.accept_token(token)
            output += forced
            pending += tokens
        if matcher.is_terminated():
            break
        matcher.fill_next_token_bitmask(bitmask)
        words = bitmask[0].numpy().view(np.uint32)  # [ceil(vocab / 32)]
        allowed = np.flatnonzero(np.unpackbits(words.view(np.uint8), bitorder="little"))
        allowed = allowed[allowed < backend.n_vocab]
        if len(allowed) == 1 and int(allowed[0]) in backend.stop_token_ids:
            break
        backend._eval(pending)
        logits = backend._logits()
        token = int(allowed[int(np.argmax(logits[allowed]))])
        if token in backend.stop_token_ids:
            break
        matcher.accept_token(token)
        output += backend._piece(token)
        pending = [token]
    return output.decode("utf-8", errors="replace")


def main() -> int:
    from test_llm_llamacpp import planner_schemas

    from agent.llm import get_backend
    from agent.planner import system_prompt

    backend = get_backend("embedded")
    backend.wait_loaded()
    schemas = dict(planner_schemas())
    system = {"role": "system", "content": system_prompt()}
    backend.warm_up([system])

    started = time.process_time()
    import xgrammar as xgr

    import_s = time.process_time() - started
    started = time.process_time()
    vocab = [backend._piece(token) for token in range(backend.n_vocab)]
    info = xgr.TokenizerInfo(
        vocab, vocab_type=xgr.VocabType.RAW, vocab_size=backend.n_vocab,
        stop_token_ids=backend.stop_token_ids,
    )  # fmt: skip
    info_s = time.process_time() - started

    print(f"{'request':<52} {'llama.cpp s':>11} {'ok':>3} {'xgrammar s':>10} {'ok':>3}  answer")
    totals = {"llama.cpp": 0.0, "xgrammar": 0.0}
    valid = {"llama.cpp": 0, "xgrammar": 0}
    for text in TASKS:
        schema = schemas[text]
        messages = [system, {"role": "user", "content": text}]
        row = {}
        for name in ("llama.cpp", "xgrammar"):
            started = time.process_time()
            if name == "llama.cpp":
                answer = backend.complete(messages, json_schema=schema, max_tokens=200).text
            else:
                answer = xgrammar_decode(backend, xgr, info, messages, schema)
            seconds = time.process_time() - started
            try:
                jsonschema.validate(json.loads(answer), schema)
                ok = True
            except (ValueError, jsonschema.ValidationError):
                ok = False
            totals[name] += seconds
            valid[name] += ok
            row[name] = (seconds, ok, answer)
        (a, ok_a, text_a), (b, ok_b, text_b) = row["llama.cpp"], row["xgrammar"]
        same = "same" if text_a == text_b else f"xgrammar: {text_b[:50]}"
        print(f"{text[:52]:<52} {a:11.3f} {'y' if ok_a else 'n':>3} {b:10.3f} "
              f"{'y' if ok_b else 'n':>3}  {text_a[:60]} ({same})")  # fmt: skip
    print(f"{'total':<52} {totals['llama.cpp']:11.3f} {valid['llama.cpp']:>3} "
          f"{totals['xgrammar']:10.3f} {valid['xgrammar']:>3}")  # fmt: skip
    print(
        f"\nonce per process: import xgrammar (torch, transformers) {import_s:.2f} s CPU; "
        f"its tokenizer info from the {backend.n_vocab}-token vocabulary {info_s:.2f} s CPU; "
        "llama.cpp's grammar: nothing beyond the runtime itself"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
