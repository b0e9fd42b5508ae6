from dnnbench.cli import main

raise SystemExit(main())
