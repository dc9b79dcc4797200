"""The conformance kit: vector format 2, judging results, the harness, the black-box world."""
