"""`python -m inkwell` runs the CLI (also what `accelerate launch -m inkwell` uses)."""

from inkwell.cli import main

if __name__ == "__main__":
    main()
