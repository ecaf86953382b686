"""Runs INSIDE RecBole's own environment (see ../../../shared/docs/PEERS.md; never a dependency of ours):

    /tmp/peer-recbole/bin/python recbole_peer.py DATA_DIR MODEL EPOCHS

``DATA_DIR/peer/peer.{train,valid,test}.inter`` are the atomic session files bench.py writes from our prepared
split (``session_id:token item_id_list:token_seq item_id:token``), so RecBole trains and evaluates on exactly our
cases. Trains ``EPOCHS`` epochs with the SR-GNN hyper-parameters (d = 100, batch 100, lr 1e-3, CE over all items),
then evaluates full ranking on the test file; prints one JSON line.
"""

import json
import sys
import time


def main() -> None:
    data_dir, model_name, epochs = sys.argv[1], sys.argv[2], int(sys.argv[3])
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import SRGNN, GRU4Rec
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    config = Config(
        model=model_name,
        dataset="peer",
        config_dict={
            "data_path": data_dir,
            "benchmark_filename": ["train", "valid", "test"],
            "USER_ID_FIELD": "session_id",
            "ITEM_ID_FIELD": "item_id",
            "load_col": {"inter": ["session_id", "item_id_list", "item_id"]},
            "alias_of_item_id": ["item_id_list"],
            "MAX_ITEM_LIST_LENGTH": 50,
            "embedding_size": 100,
            "hidden_size": 100,
            "step": 1,
            "loss_type": "CE",
            "train_neg_sample_args": None,
            "learning_rate": 0.001,
            "train_batch_size": 100,
            "eval_batch_size": 500,
            "epochs": epochs,
            "eval_args": {"mode": "full", "order": "TO", "split": None, "group_by": None},
            "metrics": ["Hit", "MRR", "NDCG"],
            "topk": [10, 20],
            "valid_metric": "MRR@20",
            "device": "cpu",
            "use_gpu": False,
            "seed": 0,
            "reproducibility": True,
            "show_progress": False,
            "log_wandb": False,
            "checkpoint_dir": data_dir + "/saved",
        },
    )
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, _valid_data, test_data = data_preparation(config, dataset)
    model = {"GRU4Rec": GRU4Rec, "SRGNN": SRGNN}[model_name](config, train_data.dataset).to("cpu")
    trainer = Trainer(config, model)
    seconds = []
    for epoch in range(epochs):
        t0 = time.perf_counter()
        trainer._train_epoch(train_data, epoch, show_progress=False)
        seconds.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    result = trainer.evaluate(test_data, load_best_model=False, show_progress=False)
    eval_s = time.perf_counter() - t0
    out = {k: float(v) * 100 for k, v in dict(result).items()}
    n_train = len(train_data.dataset)
    print(
        json.dumps(
            {
                "model": model_name,
                "metrics": out,
                "seconds_per_epoch": sum(seconds) / len(seconds),
                "samples_per_s": n_train / (sum(seconds) / len(seconds)),
                "eval_s": eval_s,
                "n_train": n_train,
                "n_test": len(test_data.dataset),
            }
        )
    )


if __name__ == "__main__":
    main()
