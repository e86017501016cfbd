"""The pilot's places and the demo's people, as plain data (used by `seed_demo` and the tests)."""

from __future__ import annotations

DEMO_PASSWORD = "sgdemo2026"

# code, name, English name, city, organisational identifier
HOSPITALS = [
    (
        "zsy",
        "中山大学附属第一医院",
        "First Affiliated Hospital of Sun Yat-sen University",
        "guangzhou",
        "455350130",
    ),
    ("gdph", "广东省人民医院", "Guangdong Provincial People's Hospital", "guangzhou", "455350253"),
    ("szph", "深圳市人民医院", "Shenzhen People's Hospital", "shenzhen", "455755160"),
    ("fsfph", "佛山市第一人民医院", "The First People's Hospital of Foshan", "foshan", "456352210"),
    ("dgph", "东莞市人民医院", "Dongguan People's Hospital", "dongguan", "457720580"),
]

# code, name, English name, city, district, GB/T 2260 region code used for demo identity numbers
COMMUNITIES = [
    ("gz-shipai", "石牌街道", "Shipai Subdistrict", "guangzhou", "天河区", "440106"),
    ("gz-liede", "猎德街道", "Liede Subdistrict", "guangzhou", "天河区", "440106"),
    ("gz-beijinglu", "北京街道", "Beijing Road Subdistrict", "guangzhou", "越秀区", "440104"),
    ("sz-lianhua", "莲花街道", "Lianhua Subdistrict", "shenzhen", "福田区", "440304"),
    ("sz-xiangmihu", "香蜜湖街道", "Xiangmihu Subdistrict", "shenzhen", "福田区", "440304"),
    ("sz-yuehai", "粤海街道", "Yuehai Subdistrict", "shenzhen", "南山区", "440305"),
    ("fs-zumiao", "祖庙街道", "Zumiao Subdistrict", "foshan", "禅城区", "440604"),
    ("fs-guicheng", "桂城街道", "Guicheng Subdistrict", "foshan", "南海区", "440605"),
    ("dg-guancheng", "莞城街道", "Guancheng Subdistrict", "dongguan", "莞城", "441900"),
    ("dg-nancheng", "南城街道", "Nancheng Subdistrict", "dongguan", "南城", "441900"),
]

# code, name, English name, city, community codes served, pilot hospital for escalation
HUBS = [
    (
        "hub-tianhe",
        "天河社区调度中心",
        "Tianhe dispatch hub",
        "guangzhou",
        ["gz-shipai", "gz-liede"],
        "zsy",
    ),
    (
        "hub-yuexiu",
        "越秀社区调度中心",
        "Yuexiu dispatch hub",
        "guangzhou",
        ["gz-beijinglu"],
        "gdph",
    ),
    (
        "hub-futian",
        "福田社区调度中心",
        "Futian dispatch hub",
        "shenzhen",
        ["sz-lianhua", "sz-xiangmihu"],
        "szph",
    ),
    ("hub-nanshan", "南山社区调度中心", "Nanshan dispatch hub", "shenzhen", ["sz-yuehai"], "szph"),
    (
        "hub-foshan",
        "佛山社区调度中心",
        "Foshan dispatch hub",
        "foshan",
        ["fs-zumiao", "fs-guicheng"],
        "fsfph",
    ),
    (
        "hub-dongguan",
        "东莞社区调度中心",
        "Dongguan dispatch hub",
        "dongguan",
        ["dg-guancheng", "dg-nancheng"],
        "dgph",
    ),
]

# username, name, role, hub code or hospital code, duty lead
STAFF = [
    ("dr_tianhe", "王志强", "community_doctor", "hub-tianhe", True),
    ("dr_tianhe2", "刘晓燕", "community_doctor", "hub-tianhe", False),
    ("dr_yuexiu", "黄俊", "community_doctor", "hub-yuexiu", True),
    ("dr_futian", "张丽华", "community_doctor", "hub-futian", True),
    ("dr_futian2", "赵明", "community_doctor", "hub-futian", False),
    ("dr_nanshan", "周婷", "community_doctor", "hub-nanshan", True),
    ("dr_foshan", "吴伟", "community_doctor", "hub-foshan", True),
    ("dr_dongguan", "郑雪梅", "community_doctor", "hub-dongguan", True),
    ("clin_zsy", "林国栋", "hospital_clinician", "zsy", False),
    ("clin_gdph", "何静", "hospital_clinician", "gdph", False),
    ("clin_szph", "郭涛", "hospital_clinician", "szph", False),
    ("clin_fsfph", "马丽", "hospital_clinician", "fsfph", False),
    ("clin_dgph", "罗斌", "hospital_clinician", "dgph", False),
]

# The two patients the README's walkthrough uses; keep exactly.
# username, name, family, given, sex, birth date, community, resident id, conditions, phone
KNOWN_PATIENTS = [
    (
        "chenmeiling",
        "陈美玲",
        "陈",
        "美玲",
        "female",
        "1958-03-12",
        "gz-shipai",
        "440106195803120021",
        ["hypertension"],
        "13800138021",
    ),
    (
        "lijianguo",
        "李建国",
        "李",
        "建国",
        "male",
        "1962-07-15",
        "sz-lianhua",
        "440304196207150032",
        ["copd", "heart_failure"],
        "13900139032",
    ),
]

FAMILY_NAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蔡"
GIVEN_MALE = [
    "伟",
    "强",
    "军",
    "建华",
    "志明",
    "国强",
    "海涛",
    "文斌",
    "永康",
    "德明",
    "家豪",
    "振宇",
]
GIVEN_FEMALE = [
    "芳",
    "秀英",
    "丽",
    "敏",
    "静",
    "桂兰",
    "玉珍",
    "惠玲",
    "淑华",
    "美华",
    "雪梅",
    "小红",
]
CONDITION_SETS = [
    ["hypertension"],
    ["diabetes"],
    ["hypertension", "diabetes"],
    ["copd"],
    ["heart_failure"],
    ["hypertension", "heart_failure"],
]
GENERATED_PATIENTS = 48
