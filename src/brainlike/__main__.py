from brainlike.cli import main

raise SystemExit(main())
