-- Every flow's runs are counted now (0022), so every step of the counter, and every report or recovery page
-- that catches the counts up, reads the exit marks just above its cursor, in `seq` order. A B-tree gives that
-- order and lets the planner probe the index's real end for how few rows lie above the newest `seq` its
-- statistics know (BRIN does neither: on a freshly loaded table the step's read was a parallel scan of every
-- mark). Appended at its right edge, as `clicks_by_seq` is.
DROP INDEX exit_marks_by_seq;
CREATE INDEX exit_marks_by_seq ON exit_marks (seq);
