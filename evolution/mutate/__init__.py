"""The offline `mutate` proposer: genetic-improvement repair, validated by the tests."""
