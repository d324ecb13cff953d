"""Workstation side of cctvkit: label-free data sets from the user's footage, training and evaluation."""
