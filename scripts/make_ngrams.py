"""Count n-gram tables of the training plays and score them on the held-out plays (notebook 07).

Usage (from the repository root):  python scripts/make_ngrams.py [--max-n 10] [--out DIR]

For every n = 2 .. max-n (an n-gram conditions on n - 1 characters): how many contexts the 32
training plays hold, the training loss of the raw counts, and the held-out loss on the
validation plays with add-0.1 smoothing, with interpolated absolute discounting and with
interpolated Kneser-Ney (``helpers.language_model.interpolated_loss``). The discount D of each
n and method is tuned on four
training plays (every eighth) held out from a count of the other 28, never on the validation
plays it is scored on. Counting only: deterministic, no seed. Writes ``ngrams.json``.
"""

import sys
import time

import numpy as np

from helpers import artefacts, data, language_model, tokenizers

ALPHA = 0.1
DISCOUNTS = [round(d, 2) for d in np.arange(0.05, 1.0001, 0.05)]


def main(argv=None) -> int:
    parser = artefacts.command_parser(__file__, __doc__)
    parser.add_argument("--max-n", type=int, default=10, help="longest table: n - 1 characters of context")
    args = artefacts.start_command(parser, argv)
    start = time.perf_counter()
    train_plays = data.split_plays()["train"]
    train_text, val_text = data.corpus_text("train"), data.corpus_text("validation")
    tok = tokenizers.CharTokenizer(train_text)
    V, K = tok.vocab_size, args.max_n - 1

    def ids(plays):
        return np.array(tok.encode("\n\n".join(p.text for p in plays)))

    tune_plays, count_plays = train_plays[::8], [p for i, p in enumerate(train_plays) if i % 8]
    tuning = language_model.ngram_statistics(ids(count_plays), ids(tune_plays), V, K)
    train_ids, val_ids = np.array(tok.encode(train_text)), np.array(tok.encode(val_text))
    held_out = language_model.ngram_statistics(train_ids, val_ids, V, K)
    rows = []
    for n in range(2, args.max_n + 1):
        row = {"n": n, "contexts_seen": held_out[n - 1]["seen"], "train_loss": round(held_out[n - 1]["train_loss"], 5),
               "heldout_add_alpha": round(language_model.add_alpha_loss(held_out, n, ALPHA, V), 5)}
        for name, kneser_ney in (("interpolated", False), ("kneser_ney", True)):
            tune_loss = {d: language_model.interpolated_loss(tuning, n, d, V, kneser_ney) for d in DISCOUNTS}
            best = min(tune_loss, key=tune_loss.get)
            row.update({f"{name}_discount": best, f"{name}_tuning_loss": round(tune_loss[best], 5),
                        f"heldout_{name}": round(language_model.interpolated_loss(held_out, n, best, V,
                                                                                  kneser_ney), 5)})
        rows.append(row)
        print(f"n = {n:>2}: {row['contexts_seen']:>9,} contexts; training {row['train_loss']:.3f}; held-out "
              f"add-{ALPHA} {row['heldout_add_alpha']:.3f}, interpolated {row['heldout_interpolated']:.3f} "
              f"(D = {row['interpolated_discount']}), Kneser-Ney {row['heldout_kneser_ney']:.3f} "
              f"(D = {row['kneser_ney_discount']})")
    seconds = time.perf_counter() - start
    record = {"provenance": artefacts.provenance(seconds, seed=None, argv=args.argv),
              "alpha": ALPHA, "discounts_tried": DISCOUNTS, "first_scored_position": K,
              "tuning_plays": [p.slug for p in tune_plays], "counted_for_tuning": len(count_plays),
              "scored_characters": int(len(val_ids) - K), "rows": rows}
    path = artefacts.write_json(args.out / "ngrams.json", record)
    print(f"wrote {path} in {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
