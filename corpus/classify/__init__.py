"""Learned document classifiers (fastText): training, scoring and the inputs they read.

`corpus.classify.fasttext_model` is the library (train_classifier, load_classifier, Classifier.score,
tokenize_for_fasttext); `corpus.classify.inputs` reads labelled texts from JSONL/Parquet files and run folders.
"""
