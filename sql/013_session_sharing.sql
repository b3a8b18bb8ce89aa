-- Sessions belong to the subject that opened them; these other subjects may attach and control
-- it too (administrators always may).
alter table msr.session add column shared_with text[] not null default '{}';
