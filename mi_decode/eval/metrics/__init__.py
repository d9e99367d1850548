"""The metrics of the evaluation suites: text statistics and answer matching (:mod:`.text`), MAUVE
(:mod:`.mauve`) and paired comparisons (:mod:`.stats`)."""
