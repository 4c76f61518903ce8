-- PostgreSQL's exit marks' `seq` index became a B-tree (its 0023). SQLite reads exit marks by rowid: nothing
-- to change; this keeps the two backends' migrations numbered alike.
SELECT 1;
