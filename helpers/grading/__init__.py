"""The grader (`python -m helpers.grade`): every submission runs in its own sandbox, then the grader asks
the kernel for the answers and decides every verdict itself.

How one notebook is graded:

1. **Found and read** (`submissions`, with `canvas`, `gradescope`, `roster`, `notebook_file`): one
   notebook per student and notebook, the latest file; a file that cannot be read is its own row.
2. **Prepared** (`prepare`, with the `conventions` the build shares): outputs cleared, the course's
   check cells restored, `grader-skip` cells no answer needs emptied. Nothing is added.
3. **Run** (`runner`): nbclient starts ipykernel inside `python -m helpers.sandbox`, talking over Unix
   sockets in the sandbox's folder; the graded kernel imports the notebook's exercises first, without
   references (`helpers.exercises.core.Withheld`). Each cell has a wall-clock limit (interrupt, then kill).
4. **Asked**: after the last cell, one question per exercise over the kernel client's shell channel:
   a function's inputs (visible cases and hidden ones drawn now from the grader's seed), or a named
   answer's value. The reply is read from that request's own output, framed by a nonce.
5. **Judged** (`judging`) in the grader's process against the reference (`course`: the exercise
   registry), and checked as source (`sourcecheck`, tripwires in the kernel while it answers).
6. **Written** (`records`, `gradebook`, `feedback`, `shards`, `cli`): one row per exercise that always
   says why; tables escape control characters.

`grader.grade_class` runs a class with a pool of workers; `cli.main` is the command line.
"""
