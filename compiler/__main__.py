from compiler.driver import main

raise SystemExit(main())
