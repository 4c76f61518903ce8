-- A flow's experiment: the run's group (`treatment` or `holdout`) in the experiment it started in, decided when
-- it starts (pronto_domain::experiment::assign) and kept for its life. NULL: the flow ran no experiment then.
ALTER TABLE runs ADD COLUMN experiment TEXT;
ALTER TABLE runs ADD COLUMN arm TEXT;
