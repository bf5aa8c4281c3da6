"""Framework glue shared by the public modules: the adapters' callables, the compat shims (every
private XGBoost / LightGBM name boostloss uses), the collective, portable LightGBM models and the
distributed start. Imports only :mod:`boostloss._kernels` and :mod:`boostloss.losses`.
"""
