"""The ML domain: Oxford-IIIT Pet format I/O, synthetic data, splits, model code, metrics and calibration."""
