"""How OpenPV's own tests run OpenPV, where that is more than one run of each params file.

Facts read from the tests' ``src/main.cpp``, ``CMakeLists.txt`` and scripts
(OpenPV 0e139e9), as command lines of OpenPV's one-process driver in the
test's folder. Runs that need several MPI processes, and test binaries'
own flags (``--testall``), are replaced by the one-process runs they stand for.
"""
from .oracle import Step

_TESTALL = {  # `--testall`: a run, a restart from its Checkpoint06, a fresh run, a run of its params echo
    "GenericSystemTest": ("checkpoints/Checkpoint06", "output1/pv.params"),
    "LCATest": ("output/checkpoints/Checkpoint06", "output/LCATest.params"),
    "MomentumLCATest": ("checkpoints/Checkpoint06", "output/pv.params"),
    "TotalEnergyTest": ("checkpoints/Checkpoint06", "output/pv.params"),
    "WriteSparseFileTest": ("checkpoints/Checkpoint06", "output1/pv.params"),
}
_REPLACE = ("--overwrite",)  # pvmpi replaces a finished run's files only when told (docs/openpv-migration.md)

PLANS = {
    test: (Step(f"input/{test}.params"), Step(f"input/{test}.params", ("-c", checkpoint)),
           Step(f"input/{test}.params", pvmpi_args=_REPLACE), Step(echo, pvmpi_args=_REPLACE))
    for test, (checkpoint, echo) in _TESTALL.items()
}
PLANS.update({
    "LayerRestartTest": (Step("input/LayerRestartTest-Write.params"),
                         Step("input/LayerRestartTest-Check.params"),
                         Step("input/LayerRestartTest-Read.params")),
    "InitializeFromCheckpointDirTest": (Step("input/BaseRun.params"),
                                        Step("input/InitializeFromCheckpointDirTest.params")),
    "MomentumInitializeTest": (Step("input/MomentumInitialize_initialrun.params"),
                               Step("input/MomentumInitialize_restart.params")),
    "RequireAllZeroActivityProbeTest": (Step("input/allzeros.params"),
                                        Step("input/nonzeropresent.params", fails=True)),
    "RandStateSystemTest": (Step("input/RandStateSystemTest1.params"),  # its -c is misspelt: ignored
                            Step("input/RandStateSystemTest2.params")),
    # testProbeOutput.bash, one process: a base run; initialise from a copy of its Checkpoint040;
    # restart the base run from Checkpoint040; continue it to a longer stopTime with -r
    "ProbeOutputTest": (
        Step("input/baserun.params"),
        Step("input/initfromchkpt.params",
             before=(("copy", "output/checkpoints/Checkpoint040", "initializing_checkpoint"),
                     ("move", "output", "output_oneproc"))),
        Step("input/baserun.params", ("-c", "output/checkpoints/Checkpoint040"),
             before=(("move", "output", "output_oneproc_initfromchkpt"),
                     ("copy", "output_oneproc", "output"))),
        Step("input/longerstoptime.params", ("-r",),
             before=(("move", "output", "output_oneproc_restartfromchkpt"),
                     ("copy", "output_oneproc", "output")))),
})

NOT_RUN = {  # params files in input/ folders that OpenPV's tests never run through OpenPV's driver
    "ChannelCoefficientsTest/input/scrub.params": "its test runs ChannelCoefficientsTest.params only",
    "CheckpointerClassTest/input/CheckpointerClassTest.params":
        "no HyPerCol: the test reads a Checkpointer group with PVParams",
    "DeleteOlderCheckpointsTest/input/DeleteOldCheckpointsTest.params":
        "no HyPerCol: the test reads a Checkpointer group with PVParams",
    "L1NormProbeLocalTest/input/L1NormProbeLocalTest.params":
        "probe groups only: the test builds them with PVParams",
    "L2NormProbeLocalTest/input/L2NormProbeLocalTest.params":
        "probe groups only: the test builds them with PVParams",
    "EnergyProbeComponentTest/input/EnergyProbeComponentTest.params":
        "the test builds the column and never runs it",
    "ShrunkenPatchFlagTest/input/ShrunkenPatchFlagTest.params":
        "not a registered test (no CMakeLists.txt; its input/dotmovie.pvp is absent)",
}
