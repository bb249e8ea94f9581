"""The pipeline: one case assessed end to end (:mod:`.assess`), a cohort of cases (:mod:`.cohort`)."""
