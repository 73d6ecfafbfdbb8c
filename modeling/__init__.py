"""What a trained model is, between training (which saves it) and serving (which loads it).

``modeling.artifact`` holds the scoring model and its files (LightGBM text, calibration,
offsets, metadata, checksums), ``modeling.calibrator`` the calibration maps it applies, and
``modeling.registry`` where versions live in MLflow and how one is found and loaded. Nothing
here imports ``training`` or scikit-learn: a server loads models with this package alone.
"""
