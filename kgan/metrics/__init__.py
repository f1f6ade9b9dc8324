"""Metrics of results: image quality (PSNR, SSIM, FID, KID: ``image``), colour (colourfulness,
CIEDE2000, zombie share: ``color``) and temporal consistency of video (``video``).
"""
