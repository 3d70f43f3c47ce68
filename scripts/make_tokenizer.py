"""Train the course's BPE tokenizer on the training plays and save it to data/.

Usage (from the repository root):  python scripts/make_tokenizer.py [--vocab-size 512] [--out DIR]

Deterministic: the same corpus and vocabulary size always give the same file.
"""

import sys
import time

from helpers import artefacts, data, tokenizers


def main(argv=None) -> int:
    parser = artefacts.command_parser(__file__, __doc__)
    parser.add_argument("--vocab-size", type=int, default=512)
    args = artefacts.start_command(parser, argv)
    text = data.corpus_text("train")
    print(f"training plays: {len(data.split_plays()['train'])}, {len(text):,} characters")
    start = time.perf_counter()
    tokenizer = tokenizers.BPETokenizer.train(text, args.vocab_size)
    seconds = time.perf_counter() - start
    path = args.out / f"tokenizer_bpe{args.vocab_size}.json"
    tokenizer.save(path)
    validation = data.corpus_text("validation")
    ratio = len(validation.encode("utf-8")) / len(tokenizer.encode(validation))
    print(f"learned {len(tokenizer.merges)} merges in {seconds:.1f} s; wrote {path.name} ({path.stat().st_size:,} bytes)")
    print(f"held-out plays: {ratio:.2f} bytes per token")
    print("longest tokens:", sorted(tokenizer.vocab[256:], key=len, reverse=True)[:8])
    return 0


if __name__ == "__main__":
    sys.exit(main())
