#!/usr/bin/env bash
# The main job on the embedded synthetic benchmark, end to end on a 2-core CPU (see README for times):
# generate CT phantoms -> nnU-Net planning/preprocessing -> train a small Malenia (smoke schedule)
# -> zero-shot prediction with every knowledge-table row (unseen diseases included) -> DSC/NSD.
# The smoke model trains for 10 iterations only: its numbers show the pipeline works, not what
# Malenia reaches (see docs/benchmarks.md for longer runs). A label absent from both a case and its
# prediction is left out of that label's mean (--both-empty nan) rather than counted as a perfect 1.
set -euo pipefail
DATA=${MALENIA_DATA:-$PWD/malenia_data}
export nnUNet_raw=$DATA/nnUNet_raw nnUNet_preprocessed=$DATA/nnUNet_preprocessed nnUNet_results=$DATA/nnUNet_results
export nnUNet_compile=${nnUNet_compile:-0} nnUNet_def_n_proc=${nnUNet_def_n_proc:-2} nnUNet_n_proc_DA=${nnUNet_n_proc_DA:-2}
RAW=$nnUNet_raw/Dataset901_MaleniaSynth
MODEL=$nnUNet_results/Dataset901_MaleniaSynth/nnUNetTrainerMalenia_smoke__nnUNetPlans__3d_fullres

malenia synth -d 901 --name MaleniaSynth --cases 40 --seed 0 --force --preview "$DATA/synth_preview.png"
nnUNetv2_plan_and_preprocess -d 901 -c 3d_fullres --verify_dataset_integrity -np 2 -npfp 2
nnUNetv2_train 901 3d_fullres 0 -tr nnUNetTrainerMalenia_smoke -device cpu
malenia predict -i "$RAW/imagesTs" -o "$DATA/zero_shot" -m "$MODEL" -f 0 --device cpu --overwrite --overlays
malenia evaluate -p "$DATA/zero_shot" -g "$RAW/labelsTs" --label-file "$RAW/dataset_test.json" -o "$DATA/evaluation" --both-empty nan
echo "preview: $DATA/synth_preview.png; progress: $MODEL/fold_0/progress_malenia.png"
echo "zero-shot label maps and lesion reports: $DATA/zero_shot; DSC/NSD: $DATA/evaluation/summary.md"
