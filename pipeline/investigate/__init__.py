"""investigate"""
