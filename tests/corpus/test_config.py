import pytest

from corpus.config import ConfigError, PipelineConf, load_config


def test_default_config_matches_datatrove_defaults():
    from datatrove.pipeline.filters import FineWebQualityFilter, GopherQualityFilter, GopherRepetitionFilter

    conf = load_config()
    assert conf.language.threshold == 0.65 and conf.language.languages == ["en"]
    assert conf.extract.engine == "resiliparse"
    assert conf.quality.c4.filter_no_terminal_punct is False  # the FineWeb recipe
    gq = GopherQualityFilter()
    assert conf.quality.gopher_quality.min_doc_words == gq.min_doc_words
    assert conf.quality.gopher_quality.max_non_alpha_words_ratio == gq.max_non_alpha_words_ratio
    gr = GopherRepetitionFilter()
    assert [tuple(x) for x in conf.quality.gopher_repetition.dup_n_grams] == list(gr.dup_n_grams)
    fw = FineWebQualityFilter()
    assert conf.quality.fineweb.line_punct_thr == fw.line_punct_thr
    assert conf.quality.fineweb.char_duplicates_ratio == fw.char_duplicates_ratio


def test_override_parses_yaml_values():
    conf = load_config(overrides=["language.threshold=0.8", "quality.c4=null", "language.languages=[en, de]"])
    assert conf.language.threshold == 0.8
    assert conf.quality.c4 is None
    assert conf.language.languages == ["en", "de"]


def test_bad_enum_names_field_and_allowed_values():
    with pytest.raises(ConfigError) as e:
        load_config(overrides=["extract.engine=boilerpipe"])
    msg = str(e.value)
    assert "extract.engine" in msg and "'resiliparse'" in msg and "'trafilatura'" in msg and "boilerpipe" in msg


def test_out_of_range_and_unknown_keys_are_named():
    with pytest.raises(ConfigError) as e:
        load_config(overrides=["language.threshold=1.5", "quality.fineweb.bogus=1"])
    msg = str(e.value)
    assert "language.threshold" in msg and "quality.fineweb.bogus: unknown setting" in msg


def test_bad_override_syntax_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="key.path=value"):
        load_config(overrides=["language.threshold"])
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("read: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_config_roundtrips_through_json():
    conf = load_config()
    assert PipelineConf.model_validate_json(conf.model_dump_json()) == conf
