"""MovieLens parsers on tiny hand-written files."""

import numpy as np

from recommendations.engine.movielens import load_movielens
from recommendations.engine.synthetic import to_training_data
from recommendations.engine.types import InteractionTypeSpec


def test_ml100k_layout(tmp_path):
    (tmp_path / "u.data").write_text(
        "1\t10\t5\t881250949\n2\t20\t3\t891717742\n1\t20\t4\t1\n"
    )
    flags = ["0"] * 19
    action_comedy = list(flags)
    action_comedy[1] = action_comedy[5] = "1"
    (tmp_path / "u.item").write_bytes(
        (
            "10|Caf\xe9 Story (1995)|01-Jan-1995||http://x|"
            + "|".join(action_comedy)
            + "\n"
            "20|Other (1996)|01-Jan-1996||http://y|" + "|".join(flags) + "\n"
        ).encode("latin-1")
    )
    (tmp_path / "u.user").write_text("1|24|M|technician|85711\n2|53|F|other|94043\n")
    log = load_movielens(tmp_path)
    assert [it["id"] for it in log.items] == ["10", "20"]
    assert log.items[0]["title"] == "Caf\xe9 Story"
    assert log.items[0]["categories"] == ["Action", "Comedy"]
    assert log.items[0]["attributes"] == {"year": 1995}
    assert log.users[1]["attributes"]["occupation"] == "other"
    assert log.user_index.tolist() == [0, 1, 0]
    assert log.item_index.tolist() == [0, 1, 1]
    assert log.value.tolist() == [5.0, 3.0, 4.0]
    assert log.type_names == ("rating",)
    assert log.timestamp[0] == 881250949.0
    data = to_training_data(log, (InteractionTypeSpec(9, "rating", 1.0, True),))
    assert data.type_ids.tolist() == [9, 9, 9]


def test_ml_latest_layout(tmp_path):
    (tmp_path / "ratings.csv").write_text(
        "userId,movieId,rating,timestamp\n7,1,4.0,964982703\n7,50,3.5,964981247\n"
        "9,50,5.0,964982224\n"
    )
    (tmp_path / "movies.csv").write_text(
        "movieId,title,genres\n1,Toy Story (1995),Adventure|Animation\n"
        '50,"Usual Suspects, The (1995)",Crime|Mystery\n3,None,(no genres listed)\n'
    )
    log = load_movielens(tmp_path)
    assert len(log.items) == 3 and log.items[1]["title"] == "Usual Suspects, The"
    assert log.items[2]["categories"] == []
    assert [u["id"] for u in log.users] == ["7", "9"]
    assert log.item_index.tolist() == [0, 1, 1]
    assert np.allclose(log.value, [4.0, 3.5, 5.0])
